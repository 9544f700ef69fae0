"""What ``GET /reports/{kind}`` answers, for /openapi.json: each figure of ``reports.summary``, ``reports.centre`` and
``reports.machine_precision`` with its meaning (the module's docstring says how the case log decides each)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Figures(BaseModel):
    received: int = Field(title="cases received in the period, under the department a case was first sent to")
    dispatched: int = Field(title="dispatches in the period, under the department each went to (a case sent again "
                            "counts again)")
    closed: int = Field(title="closings in the period, under the department of the round each ended")
    closed_on_time: int = Field(title="closings whose round fed back or closed by its deadline of then")
    on_time_rate: float | None = Field(title="closed_on_time / closed; null with no closing")
    overdue: int = Field(title="cases past a department's deadline of then at the period's end (now, within it); the "
                         "command centre's own lateness is in centre, never here")
    deadline_as_of_now: int = Field(title="of these figures, how many were judged on a case's deadline of now: its "
                                    "dispatch was logged before migration 14, and an extension or a later round has "
                                    "moved it since")


class CategoryFigures(Figures):
    category: str = Field(title="the category's name (category_name)")


class DepartmentFigures(Figures):
    department: str = Field(title="the department's id")
    rank: int = Field(title="by on-time rate, then by closings, then fewest overdue")


class CentreFigures(BaseModel):
    """The command centre's own waits: a lead held for review, a case a department returned, until confirmed,
    rejected, sent on or 挂账; each deadline the category's review_service_level as the tables say now."""

    began: int = Field(title="waits begun in the period")
    ended: int = Field(title="waits ended in the period")
    ended_late: int = Field(title="of those ended, how many past their deadline")
    waiting: int = Field(title="waits open at the period's end (now, within it)")
    overdue: int = Field(title="of those waiting, how many past their deadline")


class Precision(BaseModel):
    raised: int = Field(title="cases the cameras raised in the period")
    judged: int = Field(title="of those, how many have a verdict")
    confirmed: int = Field(title="verdict correct")
    rejected: int = Field(title="verdict false_alarm")
    precision: float | None = Field(title="confirmed / (confirmed + rejected); null with neither")


class CategoryPrecision(Precision):
    category: str = Field(title="the category's name (category_name)")


class CameraPrecision(Precision):
    box: str = Field(title="the edge box")
    camera: str = Field(title="the camera, of that box")


class MachinePrecision(Precision):
    categories: list[CategoryPrecision] = Field(title="by category name")
    cameras: list[CameraPrecision] = Field(title="the most false alarms first")


class Report(Figures):
    """民情快报: the period's figures from each case's log, in all, by category and by department."""

    model_config = ConfigDict(populate_by_name=True)

    kind: Literal["daily", "weekly"] = Field(title="the period: the Beijing day of date, or its week (Monday on)")
    from_: str = Field(alias="from", title="the period's start (Beijing midnight), ISO 8601 in UTC")
    to: str = Field(title="the period's end (not in it), ISO 8601 in UTC")
    categories: list[CategoryFigures] = Field(title="by category name")
    departments: list[DepartmentFigures] = Field(title="ranked (rank)")
    centre: CentreFigures | None = Field(title="the command centre's own lateness; null in a department's report")
    machine: MachinePrecision = Field(title="how often the cameras were right, for the cases raised in the period")
