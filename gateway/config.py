"""Gateway configuration: broker, database URL, HTTP, and the city's tables."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from collections.abc import Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gateway import gridmap
from gateway.deadlines import Calendar, ServiceLevel, deadline, parse_service_level, parse_working_hours, since
from gateway.workflow import DEPARTMENT_CLOCK, CaseState
from xueliang import coordinates
from xueliang.certificates import ca_certificate
from xueliang.characters import hidden
from xueliang.mqtt import broker_host
from xueliang.textfile import MANY_KEYS, NotThere, TooLong, folder_of, load_yaml, read_text, said, said_first, there
from xueliang import wire
from xueliang.wire import GRID_PATTERN

log = logging.getLogger(__name__)
IDENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TABLES_DIR = Path(__file__).resolve().parent / "tables"
MAX_LEVEL_DAYS = 366  # a category's service levels and windows: longer is a typo
# a category's merge radius: a camera sees a few hundred metres, a street block is 100-300 m; a kilometre
# already joins incidents of different streets into one case, so more is a typo (1e300 joined every case of
# the category in the city into one)
MAX_MERGE_RADIUS_M = 1_000.0
MAX_CONFIG_BYTES = 4 << 20  # a gateway's config is a few hundred bytes; as the edge's


WAITING_PICTURES_MB = 512  # a box's pictures no event named yet: an hour of a busy box's, its events held for its clock


class GatewayConfigError(ValueError):
    """The gateway configuration or a table is wrong; the message says where."""


def _shown(name: str) -> str:
    r"""A name the pages show (a department's, a category's and its code, a grid's): ValueError for control or
    invisible formatting characters. A right-to-left override (U+202E, or a mark pasted from a spreadsheet) in a
    grid's name reversed what followed it on the line: its code, ``网格1 (D-S1-C1-G1)`` read ``网格1 (1G-1C-1S-D)``.
    Spaces of any width are names' own.

    >>> _shown("丁字沽　十段"), _shown("网格1‮")
    Traceback (most recent call last):
    ...
    ValueError: '网格1\u202e' has control or invisible formatting characters (U+202E); write it in letters, digits, punctuation and spaces
    """
    codes = hidden(name)
    if codes:
        raise ValueError(f"{name[:40]!r} has control or invisible formatting characters ({codes}); write it in "
                         "letters, digits, punctuation and spaces")
    return name


Name = Annotated[str, Field(min_length=1), AfterValidator(_shown)]


class Strict(BaseModel):
    # finite numbers only, as on the wire: an .inf escalation_check_s ended the gateway's clock
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Department(Strict):
    id: str = Field(pattern=IDENT)
    name: Name


class Category(Strict):
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", title="Incident type from the edge")
    code: Name = Field(title="The city's category code")
    name: Name = Field(title="Category name shown to people")
    department: str = Field(pattern=IDENT)
    service_level: str = Field(title="e.g. 30s, 1h, 3 working days")
    urgent_service_level: str | None = Field(
        default=None, title="For incidents the edge marks urgent (a spill across the carriageway), e.g. 1h")
    review: bool = Field(default=False, title="Hold new cases for a person's confirmation before dispatch")
    auto_close: bool = Field(default=True, title="Close a case in feedback when the camera sees the problem gone")
    recheck_service_level: str = Field(
        default="1 working day", title="The re-check's (核查) own time after a department's feedback; an overdue "
        "re-check is escalated to the centre, not counted against the department")
    review_service_level: str = Field(
        default="2 working hours", title="The command centre's own time for a case waiting on it: a lead held for "
        "review (待审核) to be confirmed or rejected, a case a department returned (已回退) to be sent on; overdue "
        "past it, escalated up the grid tree, never counted against a department")
    merge_radius_m: float = Field(default=30.0, ge=0, le=MAX_MERGE_RADIUS_M,
                                  title="An incident this close to an open case joins it (metres)")
    merge_window: str | None = Field(
        default=None, title="Only if the case was opened within this time (default: for as long as it is open)")
    recheck_window: str = Field(default="1h", title="A recurrence this soon after closing reopens the case")
    rejected_window: str = Field(
        default="7d", title="A lead the edge could not confirm (needs_review), at the place of a lead a person "
        "rejected this recently, joins that rejected case instead of waiting for review again")
    late_after: str | None = Field(
        default=None, title="An incident that first reaches the gateway this long after the camera saw it (a box "
        "back after a day offline sends its outbox at once) opens a case held for review, not dispatched: the "
        "camera may have seen it gone long ago (default: the case's service level, the urgent one for an urgent "
        "incident)")

    @field_validator("service_level", "urgent_service_level", "recheck_service_level", "review_service_level",
                     "merge_window",
                     "recheck_window", "rejected_window", "late_after")
    @classmethod
    def _level(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            # counted as calendar time: 10**20 working days made each case's deadline count days
            # for 2 s and overflow, every incident of the category a dead letter
            level = parse_service_level(v)
            if deadline(0.0, level._replace(working=False)) > MAX_LEVEL_DAYS * 86400:
                raise ValueError(f"{v!r} is longer than {MAX_LEVEL_DAYS} days; write at most '{MAX_LEVEL_DAYS} days'")
            # a window of 0 switches its joining off; a service level of 0 makes every case overdue at birth
            if level.amount == 0 and info.field_name.endswith("service_level"):
                raise ValueError(f"{v!r} gives no time at all: every case would be overdue when it opens")
        return v

    def window_start(self, field: str, now: float, calendar: Calendar) -> float:
        """When the window ``field`` (``merge_window``, ``recheck_window``, ``rejected_window``) that ends ``now``
        began, on the city's calendar: a window in working hours was counted from 1970 on the default calendar, and
        ``recheck_window: 2 working hours`` was 3 h of any hours, at night too, whatever the city's."""
        return since(now, parse_service_level(getattr(self, field)), calendar)

    def level_written(self, urgent: bool = False) -> str:
        """The service level of a case as written: the urgent one where the case is urgent and one is set."""
        return self.urgent_service_level if urgent and self.urgent_service_level else self.service_level

    def level(self, urgent: bool = False) -> ServiceLevel:
        return parse_service_level(self.level_written(urgent))

    def late_limit(self, urgent: bool = False) -> str:
        """How long after the camera saw an incident its first event may reach the gateway and its case still be
        dispatched, as written: ``late_after``, else the service level of its case."""
        return self.late_after or self.level_written(urgent)


class Grid(Strict):
    code: str = Field(pattern=GRID_PATTERN, title="Grid code: letters (Chinese too), digits and . _ - (it names a topic)")
    name: Name
    level: str = Field(default="grid", title="district / street / community / grid / unit")
    parent: str | None = None


class Route(Strict):
    type: str = Field(title="Incident type")
    grid: str = Field(title="Applies to this grid and everything under it")
    department: str = Field(pattern=IDENT)


# a street camera's zones open a few cases an hour (an incident at an open case joins it, one at a case closed within
# the hour reopens it): 20 is a new problem every 3 minutes, all hour
NEW_CASES_PER_CAMERA_HOUR = 20


class Tables(Strict):
    departments: list[Department] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list, title="Weekend days that are working days (调休)")
    working_hours: str = Field(
        default="09:00-18:00", title="Working hours of a working day, for service levels in working hours: "
        "HH:MM-HH:MM, or several spans apart by commas or as a list, the breaks between them not counted "
        "(09:00-12:00, 13:30-17:30)")
    grids: list[Grid] = Field(default_factory=list, title="The grid tree; may also come from grids_csv")
    routes: list[Route] = Field(default_factory=list, title="Category x grid subtree -> department")
    grid_shapes: dict[str, list[list[list[tuple[float, float]]]]] = Field(
        default_factory=dict, title="Grid code -> polygons (rings of longitude, latitude) for the map; from grids_geojson")
    grids_coordinates: coordinates.System = Field(
        default="wgs84", title="What grids_geojson's boundaries are in: wgs84 (GPS, Tianditu), gcj02 (drawn on AMap or "
        "Tencent) or bd09 (Baidu); converted to WGS 84, the wire's, when the tables load")
    unknown_grid: Literal["dead_letter", "centre"] = Field(
        default="dead_letter", title="An incident naming a grid not in the tree: refused as a dead letter with the "
        "reason, or raised to the centre (the tree's root) for review, flagged")
    new_cases_per_camera_hour: int | None = Field(
        default=NEW_CASES_PER_CAMERA_HOUR, ge=0, le=100_000, strict=True,
        title="A camera that opened this many cases within the hour has its next new ones held for review (待审核), "
        "not dispatched, until fewer: one knocked to face a rubbish depot, a detector gone wrong or a box's password "
        "in other hands opened a case for everything it sent, each department sent (0 or null: no limit)")

    @field_validator("working_hours", mode="before")
    @classmethod
    def _working_hours(cls, hours: object) -> object:
        """A lunch break (09:00-12:00, 13:30-17:30) was refused, or with one span written counted as work. Kept as
        the spans written apart by commas, a YAML list's too (``calendar`` reads them)."""
        if not isinstance(hours, (str, list)):
            return hours  # pydantic says what it is not
        return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in parse_working_hours(hours))

    @model_validator(mode="after")
    def _refs(self) -> "Tables":
        if both := sorted(set(self.holidays) & set(self.workdays)):  # the workday won, silently (Calendar.working)
            raise ValueError(f"{', '.join(map(str, both))} in both holidays and workdays; a day is one or the other")
        known = {d.id for d in self.departments}
        if len(known) < len(self.departments):
            twice = next(d.id for i, d in enumerate(self.departments) if d.id in {e.id for e in self.departments[:i]})
            raise ValueError(f"department {twice!r} appears twice")
        types, codes = set(), {}
        for c in self.categories:
            if c.department not in known:
                raise ValueError(f"category {c.type!r}: department {c.department!r} is not in departments {sorted(known)}")
            if c.type in types:
                raise ValueError(f"category {c.type!r} appears twice")
            if c.code in codes:  # a filter, a report or Open311 by code found only the first
                raise ValueError(f"category {c.type!r}: code {c.code!r} is category {codes[c.code]!r}'s too")
            types.add(c.type)
            codes[c.code] = c.type
        parents: dict[str, str | None] = {}
        for g in self.grids:  # a second row of a code silently replaced the first's parent (its routes, its scope)
            if g.code in parents:
                raise ValueError(f"grid {g.code!r} appears twice in the grid table")
            parents[g.code] = g.parent
        for g in self.grids:
            if g.parent is not None and g.parent not in parents:
                raise ValueError(f"grid {g.code!r}: parent {g.parent!r} is not in the grid table")
        # a grid whose parent was left out was a root of its own: no route of its street applied to it, no
        # operator of its street saw its cases, and the centre's (the first root) did not either
        if len(roots := [g.code for g in self.grids if g.parent is None]) > 1:
            raise ValueError(f"grids {roots[0]!r} and {roots[1]!r} have no parent: the grid tree has one root, the "
                             "command centre's (cases of grids it does not know and overdue re-checks go there); write "
                             "the parent of each grid but the root")
        rooted: set[str] = set()
        for g in self.grids:  # a circle has no root: no centre for the cases of unknown grids
            chain, last = {g.code: None}, g.code  # a dict: ordered, and quick to ask
            while (up := parents[last]) is not None and up not in rooted:
                if up in chain:
                    circle = list(chain)[list(chain).index(up):] + [up]
                    raise ValueError(f"grid {g.code!r}: its parents go round in a circle ({' -> '.join(circle)}); "
                                     "the tree needs a root")
                chain[up], last = None, up
            rooted.update(chain)
        if "grids_coordinates" in self.model_fields_set and not self.grid_shapes:  # it would convert nothing
            raise ValueError(f"grids_coordinates: {self.grids_coordinates} says what the grids' boundary map is drawn in, "
                             "and the tables name none; write grids_geojson or leave grids_coordinates out")
        for code in self.grid_shapes:
            if code not in parents:
                raise ValueError(f"grid {code!r} has a boundary in the grids' GeoJSON but is not in the grid tree")
        routed: dict[tuple[str, str], str] = {}
        for r in self.routes:
            if (r.type, r.grid) in routed:  # the first was taken: a route added below an old one changed nothing
                raise ValueError(f"route {r.type}/{r.grid} is written twice (to {routed[r.type, r.grid]!r} and "
                                 f"{r.department!r}); keep one")
            routed[r.type, r.grid] = r.department
            if r.department not in known:
                raise ValueError(f"route {r.type}/{r.grid}: department {r.department!r} is not in departments")
            if r.type not in types:
                raise ValueError(f"route {r.type}/{r.grid}: type {r.type!r} has no category")
            if parents and r.grid not in parents:  # a typo: the route never applied, the category's department did
                raise ValueError(f"route {r.type}/{r.grid}: grid {r.grid!r} is not in the grid tree")
        return self

    @cached_property
    def calendar(self) -> Calendar:
        """The working calendar, made once (the tables are frozen): ingest asks it for each message, a few times."""
        return Calendar(frozenset(self.holidays), frozenset(self.workdays), parse_working_hours(self.working_hours))

    def category(self, incident_type: str) -> Category | None:
        return next((c for c in self.categories if c.type == incident_type), None)

    def category_by_code(self, code: str) -> Category | None:
        """A category by the city's own code (e.g. 200505)."""
        return next((c for c in self.categories if c.code == code), None)

    def find_category(self, key: str) -> Category | None:
        """A category by incident type or by the city's code, as a filter names it (``garbage``, ``200102``)."""
        return self.category(key) or self.category_by_code(key)

    def department_name(self, department: str) -> str:
        """What people call a department: one taken out of the tables that cases name, the name it last had
        (``removed``), marked so; an id the gateway never knew, the id.

        >>> from gateway.config import TABLES_DIR, load_tables
        >>> tables = load_tables(TABLES_DIR / "demo.yaml").with_removed({"old-roads": "市政处", "old-parks": None})
        >>> tables.department_name("sanitation"), tables.department_name("old-roads"), tables.department_name("x")
        ('环卫所', '市政处 (已撤销)', 'x')
        >>> tables.department_name("old-parks"), tables.knows_department("old-roads")
        ('old-parks (已撤销)', False)
        """
        known = next((d.name for d in self.departments if d.id == department), None)
        if known is not None:
            return known
        if department in self.removed:
            return f"{self.removed[department] or department} (已撤销)"
        return department

    @property
    def removed(self) -> dict[str, str | None]:
        """The departments no longer in the tables that cases name, each with the name it last had (None: no dispatch
        logged it), as ``Store.removed_departments`` last found them (``with_removed``)."""
        return self.__dict__.get("_removed", {})

    def with_removed(self, names: dict[str, str | None]) -> "Tables":
        """These tables, knowing what the departments taken out of them were called (``removed``)."""
        tables = self.model_copy()
        tables.__dict__["_removed"] = {d: n for d, n in names.items() if not self.knows_department(d)}
        return tables

    @cached_property
    def department_ids(self) -> frozenset[str]:
        """The departments' ids (the API's every request compares them with the cases' for ``removed``)."""
        return frozenset(d.id for d in self.departments)

    def knows_department(self, department: str | None) -> bool:
        """Whether ``department`` is in the city's tables (an open case's may have been taken out since)."""
        return department in self.department_ids

    def removed_departments(self, open_cases: dict[str, dict[str, int]]) -> list[str]:
        """What to say of the departments that hold open cases (``open_cases``: department -> state -> how many) but
        are no longer in the tables: their cases kept the old id, the pages showed it bare, and no notice reaches it.
        Each by the name it last had too (``removed``), as the operator finds it in the tables to put back or not; its
        cases with it now (``DEPARTMENT_CLOCK``) counted apart from those waiting for the command centre or their
        re-check, which go where the tables route them when sent on: the first alone are moved
        (``gateway --move-cases``).

        >>> from gateway.config import TABLES_DIR, load_tables
        >>> tables = load_tables(TABLES_DIR / "demo.yaml").with_removed({"old-roads": "市政处", "old-parks": None})
        >>> print(tables.removed_departments({"sanitation": {"dispatched": 3}, "old-roads": {"handling": 2}})[0])
        department 'old-roads' (市政处) is no longer in the city's tables and holds 2 open case(s): 2 with it now (dispatched or handling), which no notice reaches and its token acts on none of: move them at once to the department the tables route each to now with `xueliang gateway --config GATEWAY.yaml --move-cases old-roads` (or to one named: --to DEPARTMENT)
        >>> print(tables.removed_departments({"old-parks": {"pending_review": 240, "returned": 1}})[0])
        department 'old-parks' is no longer in the city's tables and holds 241 open case(s): none with it now; 241 waiting for the command centre or their re-check (pending_review 240, returned 1): each goes to a department of the tables when sent on (confirmed, redispatched, or its re-check failed), none to move
        """
        said = []
        for department, states in sorted(open_cases.items()):
            if self.knows_department(department) or not (held := sum(states.values())):
                continue
            with_it = sum(n for s, n in states.items() if s in {c.value for c in DEPARTMENT_CLOCK})
            waiting = [(s.value, states[s.value]) for s in CaseState
                       if s not in DEPARTMENT_CLOCK and states.get(s.value)]
            parts = [f"{with_it} with it now (dispatched or handling), which no notice reaches and its token acts on "
                     "none of: move them at once to the department the tables route each to now with `xueliang gateway "
                     f"--config GATEWAY.yaml --move-cases {department}` (or to one named: --to DEPARTMENT)"
                     if with_it else "none with it now"]
            if waiting:
                parts.append(f"{held - with_it} waiting for the command centre or their re-check "
                             f"({', '.join(f'{s} {n}' for s, n in waiting)}): each goes to a department of the tables "
                             "when sent on (confirmed, redispatched, or its re-check failed), none to move")
            name = f" ({self.removed[department]})" if self.removed.get(department) else ""
            said.append(f"department {department!r}{name} is no longer in the city's tables and holds {held} open "
                        f"case(s): {'; '.join(parts)}")
        return said

    @cached_property
    def parents(self) -> dict[str, str | None]:
        return {g.code: g.parent for g in self.grids}

    def ancestors(self, grid: str) -> list[str]:
        """``grid`` and the grids above it, nearest first. A grid the tree does not know (an open case's, renamed or
        taken out of the tables since) stands under the centre, as an incident naming one is raised to it: its case
        stood alone, seen by no operator, and escalated to its own code, which nobody hears.

        >>> from gateway.config import TABLES_DIR, load_tables
        >>> tables = load_tables(TABLES_DIR / "demo.yaml")
        >>> tables.ancestors("HQ-DZG-10D-07"), tables.ancestors("HQ-OLD-01")
        (['HQ-DZG-10D-07', 'HQ-DZG-10D', 'HQ-DZG', 'HQ'], ['HQ-OLD-01', 'HQ'])
        """
        if not self.knows(grid):
            return [grid, self.centre]
        chain, seen = [grid], {grid}
        while (up := self.parents.get(chain[-1])) and up not in seen:
            chain.append(up)
            seen.add(up)
        return chain

    def department_for(self, category: Category, grid: str) -> str:
        """The route of the nearest grid up the tree, else the category's department."""
        for code in self.ancestors(grid):
            for route in self.routes:
                if route.type == category.type and route.grid == code:
                    return route.department
        return category.department

    def knows(self, grid: str) -> bool:
        """Whether ``grid`` is in the city's tree (a city without a tree knows every grid)."""
        return not self.grids or grid in self.parents

    @cached_property
    def centre(self) -> str | None:
        """The root of the grid tree: the command centre (where an overdue re-check goes)."""
        roots = [g.code for g in self.grids if g.parent is None]
        return roots[0] if roots else None

    @cached_property
    def grid_boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Each shaped grid's bounding box (``gridmap.bounds``), made once: a new case's location is tested against a
        boundary only where it lies in the box."""
        return {code: gridmap.bounds(shape) for code, shape in self.grid_shapes.items()}

    def grids_at(self, lon: float, lat: float) -> list[str]:
        """The grids whose boundary on the map holds the point (none without a boundary map)."""
        return [code for code, (w, s, e, n) in self.grid_boxes.items()
                if w <= lon <= e and s <= lat <= n and gridmap.contains(self.grid_shapes[code], lon, lat)]

    def grid_name(self, code: str) -> str:
        """What people call a grid (its code when the tree does not have it)."""
        return self.grid_names.get(code, code)

    @cached_property
    def grid_names(self) -> dict[str, str]:
        return {g.code: g.name for g in self.grids}


# the gateway signs its acknowledgements with its client id or user name (``Broker.identity``); one the
# ack schema refuses meant no box ever heard of a commit, and resent everything for ever
MAX_IDENTITY = wire.schema("ack")["properties"]["gateway"]["maxLength"]


class Broker(Strict):
    host: Annotated[str, AfterValidator(broker_host)] = Field(default="127.0.0.1", min_length=1,
                                                              title="The broker's name or address, alone")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=MAX_IDENTITY,
                                 title="The gateway's account; also its client id and the name on its acknowledgements")
    password: str | None = Field(default=None, repr=False)  # a config printed whole (a log, a traceback) shows none
    tls_ca: Path | None = Field(default=None, title="CA certificate file: connect with TLS and check the broker")
    client_id: str | None = Field(default=None, pattern=IDENT, title="Unique per gateway process; defaults to the "
                                  "user name (the deploy broker uses it as the client id whatever is sent), else xl-gateway-1")

    @field_validator("tls_ca")
    @classmethod
    def _ca(cls, v: Path | None) -> Path | None:
        """Read now: a missing CA file was a traceback from inside paho naming neither file nor field."""
        return v if v is None else ca_certificate(v, "the broker's")

    @property
    def identity(self) -> str:
        """The gateway's MQTT client id and the name it signs its acknowledgements with."""
        return self.client_id or self.username or "xl-gateway-1"


# a name or IPv4 address as a browser sends it in Host (IDN names in their xn-- form), ``*.`` before a domain for
# all of its names, or an IPv6 address in brackets; Starlette's TrustedHostMiddleware compares it, without the port
ALLOWED_HOST = re.compile(r"\*|(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\]")


def _listen_host(host: str) -> str:
    """``http.host``, the address the gateway listens on: ValueError for a URL or a port written into it, as for the
    broker's host. ``0.0.0.0:8080`` passed ``--check`` (printed as ``http 0.0.0.0:8080:8080``), and the start
    refused it as no address of this machine.

    >>> _listen_host("0.0.0.0"), _listen_host("::1")
    ('0.0.0.0', '::1')
    >>> _listen_host("0.0.0.0:8080")
    Traceback (most recent call last):
    ...
    ValueError: '0.0.0.0:8080' has a port in it: write the address alone (0.0.0.0) and port: 8080
    """
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", host):
        raise ValueError(f"{host[:80]!r} is a URL: write the address the gateway listens on alone (127.0.0.1; 0.0.0.0 "
                         "for all of this machine's), its port under port; the address clients reach it by is "
                         "public_url")
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        raise ValueError(f"{host[:80]!r} has a port in it: write the address alone ({name}) and port: {port}")
    return host


def _allowed_host(host: str) -> str:
    """A host name of ``http.allowed_hosts``: ValueError saying how to write one.

    >>> _allowed_host("gateway.city.local"), _allowed_host("*.city.local"), _allowed_host("[::1]")
    ('gateway.city.local', '*.city.local', '[::1]')
    >>> _allowed_host("http://10.0.0.5:8080")
    Traceback (most recent call last):
    ...
    ValueError: 'http://10.0.0.5:8080' is not a host name: write the name or address alone, as in the address bar between // and the port (gateway.city.local, 10.0.0.5, [::1]), or *.city.local for a domain's names
    """
    if not ALLOWED_HOST.fullmatch(host):
        raise ValueError(f"{host[:80]!r} is not a host name: write the name or address alone, as in the address bar "
                         "between // and the port (gateway.city.local, 10.0.0.5, [::1]), or *.city.local for a "
                         "domain's names")
    return host


# GeoReport's ids are domains (``city.gov``); one is sent as a query value, 253 characters at most (a domain's length)
JURISDICTION_ID = re.compile(r"[A-Za-z0-9._-]{1,253}")


def _jurisdiction_id(jid: str) -> str:
    """An id of ``http.jurisdiction_id``: ValueError naming it and saying how to write one.

    >>> _jurisdiction_id("open311.tianjin.gov.cn")
    'open311.tianjin.gov.cn'
    >>> _jurisdiction_id("tianjin gov")
    Traceback (most recent call last):
    ...
    ValueError: 'tianjin gov' is not a jurisdiction id: write the one the city publishes to Open311 clients, a domain such as tianjin.gov.cn (letters, digits and . _ -, at most 253 characters)
    """
    if not JURISDICTION_ID.fullmatch(jid):
        shown = repr(jid) if len(jid) <= 80 else f"{jid[:60]!r}... ({len(jid):,} characters)"
        raise ValueError(f"{shown} is not a jurisdiction id: write the one the city publishes to Open311 clients, a "
                         "domain such as tianjin.gov.cn (letters, digits and . _ -, at most 253 characters)")
    return jid


# what a URL may hold (RFC 3986) but a query or fragment; no space, quote or angle bracket: it is written into a
# Link header's <...> and into XML
URL_CHARACTERS = re.compile(r"[A-Za-z0-9._~:/\[\]@!$&'()*+,;=%-]{1,2000}")


def _public_url(url: str) -> str:
    """An address of ``http.public_url``: absolute http(s), no query, fragment or user; ValueError saying how to write one.

    >>> _public_url("https://xl.tianjin.gov.cn/"), _public_url("https://tianjin.gov.cn:8443/xl")
    ('https://xl.tianjin.gov.cn/', 'https://tianjin.gov.cn:8443/xl')
    >>> _public_url("xl.tianjin.gov.cn")
    Traceback (most recent call last):
    ...
    ValueError: 'xl.tianjin.gov.cn' is not a public URL: write the address clients reach the gateway by, as a browser shows it, https://xl.tianjin.gov.cn/ (http or https, a host, a port and a path if it has them; no query, fragment or user name)
    """
    shown = repr(url) if len(url) <= 80 else f"{url[:60]!r}... ({len(url):,} characters)"
    problem = ValueError(f"{shown} is not a public URL: write the address clients reach the gateway by, as a browser "
                         "shows it, https://xl.tianjin.gov.cn/ (http or https, a host, a port and a path if it has "
                         "them; no query, fragment or user name)")
    if not URL_CHARACTERS.fullmatch(url):
        raise problem
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (a port that is no number, or past 65535, is a ValueError)
    except ValueError:
        raise problem from None
    if "@" in parts.netloc:  # every client is given it: a password in it is everyone's
        raise ValueError("has a user name in it (not shown: it may hold a password); write the address clients reach "
                         "the gateway by without one, https://xl.tianjin.gov.cn/")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise problem
    return url


class Http(Strict):
    host: Annotated[str, AfterValidator(_listen_host)] = Field(
        default="127.0.0.1", min_length=1, title="The address the gateway listens on, alone (0.0.0.0: all of this "
        "machine's)")
    port: int = Field(default=8080, ge=0, le=65535)
    public_read: bool = Field(default=False, title="Let anyone read cases without a token (demo only)")
    allowed_hosts: list[Annotated[str, AfterValidator(_allowed_host)]] | None = Field(
        default=None, min_length=1, validate_default=True,
        title="The host names and addresses people open the gateway by (the Host a browser sends); any other is "
        "a 400. Required with public_read; any host ('*') without it")
    # behind a reverse proxy that rewrites Host (nginx in front, the gateway on 127.0.0.1) the host reached by is
    # the proxy's upstream name, and a client sending the city's public one was refused
    jurisdiction_id: list[Annotated[str, AfterValidator(_jurisdiction_id)]] | None = Field(
        default=None, min_length=1, title="Open311's jurisdiction_id: the id(s) clients may send (in any case), one or "
        "a list; unset, the host name the gateway is reached by")
    # the same proxy: Open311's media_url and next page were built from the request, the proxy's upstream address
    # (http://127.0.0.1:8080/cases/7/evidence.jpg), which no client reaches, and a browser's sign-in form, whose
    # Origin named the public address, was refused as another site's
    public_url: Annotated[str, AfterValidator(_public_url)] | None = Field(
        default=None, title="The address clients reach the gateway by (https://xl.tianjin.gov.cn/), for the absolute "
        "URLs it hands out (Open311's media_url and next page) and the pages' own origin (a sign-in form from it is "
        "no other site's); unset, the address each request came to")

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str] | None, info: ValidationInfo) -> list[str]:
        """Any host unless ``public_read``: then a page on the internet whose name has been pointed at the
        gateway's address (DNS rebinding) could read the cases through the browser of anyone inside the
        city's network who opens it; the Host that browser sends names the page's site, not the gateway."""
        if v is not None:
            return v
        if info.data.get("public_read"):
            raise ValueError("with public_read on, list the names and addresses people open the gateway by "
                             "(e.g. [gateway.city.local, 10.0.0.5]), or ['*'] for any: else a page on the internet "
                             "could read the cases through a browser inside the city's network (DNS rebinding)")
        return ["*"]

    @field_validator("jurisdiction_id", mode="before")
    @classmethod
    def _one_or_several(cls, v: object) -> object:
        """One id written alone (``jurisdiction_id: tianjin.gov.cn``), as a client sends it, or a list of them."""
        return [_jurisdiction_id(v)] if isinstance(v, str) else v


class GatewayConfig(Strict):
    broker: Broker = Broker()
    database: str = Field(default="sqlite:///data/gateway/gateway.sqlite", title="SQLAlchemy URL",
                          repr=False)  # its password: a config printed whole (a log, a traceback) shows none
    http: Http = Http()
    tables: Path = Field(default=TABLES_DIR / "demo.yaml", title="The city's tables (YAML)")
    escalation_check_s: float = Field(default=5.0, gt=0, le=3_600, title="How often overdue cases are looked for")
    # a box can send bad messages as fast as a gateway takes them, each kept with up to 64 kB of its payload: dead
    # letters were never deleted, and a hostile or broken box grew the table without end
    dead_letter_days: float = Field(default=90.0, gt=0, le=36_500, title="Dead letters older than this are deleted")
    dead_letter_mb: int = Field(default=1024, ge=1, title="The dead letters' payloads keep at most this many MB: "
                                "past it the oldest of the boxes holding most (each box over an even share of it "
                                "keeps its newest up to the share)")
    # a box's pictures no event named yet were capped at 5,000 (``ingest.MAX_UNNAMED_PER_BOX``): of the most a picture
    # may be (``wire.MAX_EVIDENCE_BYTES``), 20 GB from one box
    waiting_pictures_mb: int = Field(default=WAITING_PICTURES_MB, ge=1, title="A box's pictures no event has named "
                                     "yet keep at most this many MB: past it a picture is a dead letter")

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        """A URL SQLAlchemy can open, with its driver installed (each was a traceback at start). What is wrong is
        said without the URL: it may hold the database's password, and a URL that does not parse has no password
        ``without_password`` can find for sure."""
        try:
            url = make_url(v)
        except (ArgumentError, ValueError):  # ValueError: a port that is no number
            raise ValueError("is not a database URL (not shown: it may hold a password); write sqlite:///PATH or "
                             "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB") from None
        if url.drivername.startswith("sqlite") and (url.database or "").startswith("~"):  # as the edge's data_dir
            raise ValueError(f"{url.database!r}: ~ is no home folder here (the gateway would make a folder named "
                             f"{Path(url.database).parts[0]} where it is started); write the whole path, e.g. "
                             f"sqlite:///{Path(url.database).expanduser()}")
        if "@" in (url.host or ""):  # SQLAlchemy ends the password at its first @, the rest of it read as the host
            raise ValueError("names a host with an @ in it (not shown: it may be part of a password); "
                             "percent-encode an @ in the password as %40")
        try:
            url.get_dialect().import_dbapi()
        except NoSuchModuleError:
            raise ValueError(f"{url.drivername!r} is not a database SQLAlchemy knows; use sqlite:/// or "
                             "postgresql+psycopg://") from None
        except ImportError as exc:
            raise ValueError(f"the driver for {url.drivername!r} is not installed ({exc}); use sqlite:/// or "
                             "postgresql+psycopg://") from None
        return v


def _text(path: Path, max_bytes: int = gridmap.MAX_FILE_BYTES) -> str:
    """A file of the city's, or a config, read up to ``max_bytes`` (``tables: /dev/zero`` was read until memory ran
    out); GatewayConfigError naming it where it cannot be read."""
    try:
        return read_text(path, max_bytes)
    except ValueError as exc:  # not there, a folder, unreadable, not UTF-8
        raise GatewayConfigError(str(exc)) from None


def _yaml(path: Path, max_bytes: int = gridmap.MAX_FILE_BYTES) -> object:
    """A YAML file's data; GatewayConfigError naming the file when it cannot be read as YAML."""
    text = _text(path, max_bytes)
    try:
        return load_yaml(text, str(path))
    except TooLong as exc:  # a mapping past MAX_KEYS: 200,000 keys that are no field took 4 s to read
        place = _place(exc.partial, exc.loc)  # the plain values read before it: a category's type
        raise GatewayConfigError(f"{path}: {place + ': ' if place else ''}more than {exc.limit:,} keys in one mapping "
                                 f"(read up to line {exc.problem_mark.line + 1}); {MANY_KEYS}") from None
    except yaml.YAMLError as exc:
        raise GatewayConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise GatewayConfigError(f"{path}: nested too deeply to be a configuration") from None


def _named_file(path: Path, raw: dict, key: str) -> Path:
    name = raw.pop(key)
    if not isinstance(name, str) or not name:
        raise GatewayConfigError(f"{path}: {key}: write a file name next to the tables, got {name!r}")
    return _there(folder_of(path) / name, f"{key}: in {path.name}")


def _there(path: Path, named_by: str) -> Path:
    """``path``, where it is there and no folder; else GatewayConfigError saying so (``NotThere``) and what named it
    (``named_by``: ``tables: in the gateway's config``): "/etc/xueliang: is a folder; name the file" said not which
    file was meant."""
    try:
        there(path)
    except NotThere as exc:
        raise GatewayConfigError(f"{exc} (named by {named_by})") from None
    return path


def _grid_rows(path: Path) -> list[dict]:
    """The grid tree's rows from its CSV, the header first (code,name,level,parent); a wrong row is named by
    its row number as a spreadsheet shows it (the header is row 1) and its column, not by a list index.
    Cells missing at a row's end are empty (a root written without its last comma)."""
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    header = next(reader, [])
    if header and not set(header) <= set(Grid.model_fields):  # each row's every column was said wrong
        raise GatewayConfigError(f"{path} row 1: the header is {','.join(header)[:80]}; write "
                                 f"{','.join(Grid.model_fields)} (in English, lower case)")
    rows = []
    for cells in reader:
        if not cells:  # a blank line
            continue
        if len(cells) > len(header):  # an unquoted comma in a name moved the level into the parent's column
            raise GatewayConfigError(f"{path} row {reader.line_num}: {len(cells)} columns, the header has "
                                     f"{len(header)} ({','.join(header)})")
        row = {k: (v or None) if k == "parent" else v for k, v in itertools.zip_longest(header, cells)}
        try:
            Grid.model_validate(row)
        except ValidationError as exc:
            errs = "; ".join(f"column {'.'.join(map(str, e['loc']))}: {said(e)}" for e in exc.errors())
            raise GatewayConfigError(f"{path} row {reader.line_num} {errs}") from None
        rows.append(row)
    if not rows:  # else the first boundary of the GeoJSON was named as the mistake
        raise GatewayConfigError(f"{path}: no grids; write the header code,name,level,parent and a row for each grid")
    return rows


def _errors(exc: ValidationError, model: type[BaseModel], raw: object = None) -> str:
    """Each mistake by its field (``broker.port: ...``; an entry of the tables' lists as ``_place`` names it, in
    ``raw``), a key that is no field of ``model`` with the one meant; one of the whole file (not a mapping, a route to
    an unknown grid) by itself, not after an empty field name; the first ``SAID_AT_MOST``, then how many more
    (``said_first``)."""
    listed, more = said_first(exc.errors(), model)
    said = [": ".join(filter(None, (_place(raw, e["loc"]), text))) for e, text in listed]
    return "; ".join([*said, more] if more else said)


# the tables' lists, each entry named as a person finds it in the file (and the errors of ``Tables._refs`` name it):
# what one is called, and the fields that name it, the id first
NAMED_BY = {"departments": ("department", ("id", "name")), "categories": ("category", ("type", "code")),
            "grids": ("grid", ("code", "name")), "routes": ("route", ("type", "grid"))}


def _place(raw: object, loc: Sequence[str | int]) -> str:
    """Where a pydantic error of the tables is: an entry of a list in ``NAMED_BY`` by its id (``category 'spill'``;
    a route by its type and grid), or, where its id is what is wrong, by its number in the list, counted from 1 as a
    person counts, and its other name; ``categories.0.code`` said the first as 0. Other places by their keys.

    >>> raw = {"departments": [{"id": "traffic", "name": "交警"}, {"id": "环卫", "name": "环卫所"}],
    ...        "routes": [{"type": "spill", "grid": "HQ-1", "department": 7}]}
    >>> _place(raw, ("departments", 0, "name")), _place(raw, ("departments", 1, "id"))
    ("department 'traffic' name", "department #2 (name '环卫所') id")
    >>> _place(raw, ("routes", 0, "department")), _place({}, ("categories", 2, "code")), _place(None, ("http", "port"))
    ("route 'spill/HQ-1' department", 'category #3 code', 'http.port')
    """
    words: list[str] = []
    node, loc, i = raw, list(loc), 0
    while i < len(loc):
        key = loc[i]
        if key in NAMED_BY and i + 1 < len(loc) and isinstance(loc[i + 1], int) and isinstance(node, dict):
            (what, names), index, field = NAMED_BY[key], loc[i + 1], (loc[i + 2:i + 3] or [None])[0]
            items = node.get(key)
            node = items[index] if isinstance(items, list) and index < len(items) else None
            named = {n: v for n in names if isinstance(node, dict) and isinstance(v := node.get(n), str) and v}
            if key == "routes":  # a route is its type and grid
                place = f"{what} {named['type'] + '/' + named['grid']!r}" if len(named) == 2 and field not in names \
                    else f"{what} #{index + 1}"
            elif names[0] in named and field != names[0]:
                place = f"{what} {named[names[0]]!r}"
            else:  # its id is what is wrong, or none: counted, and named by its other name where it has one
                other = next((f" ({n} {v!r})" for n, v in named.items() if n != names[0] and n != field), "")
                place = f"{what} #{index + 1}{other}"
            words.append(place + " " * (i + 2 < len(loc)))
            i += 2
            continue
        words.append(f"{'.' if words and not words[-1].endswith(' ') else ''}{key}")
        node = node.get(key) if isinstance(node, dict) else None
        i += 1
    return "".join(words)


def load_tables(path: Path) -> Tables:
    """The city's tables from YAML; ``grids_csv: FILE`` (code,name,level,parent) may hold the grid tree,
    ``grids_geojson: FILE`` the grids' boundaries for the map (``gateway.gridmap``: checked here), in WGS 84 or
    converted to it from the system ``grids_coordinates`` names."""
    path = Path(path)
    try:
        raw = _yaml(_there(path, "tables: in the gateway's config"))
        if raw is None:  # "departments: Field required; categories: Field required", of a file emptied or cut off
            raise GatewayConfigError(f"{path}: empty (or comments only): write the city's departments and categories "
                                     f"at least ({TABLES_DIR / 'demo.yaml'} is the demo city's)")
        if not isinstance(raw, dict):  # pydantic said "Input should be a valid dictionary or instance of Tables"
            raise GatewayConfigError(f"{path}: expected a mapping with departments and categories")
        if isinstance(raw, dict) and "grids_csv" in raw:
            written = raw.get("grids") or []  # grids in the YAML too (none written: an empty ``grids:``)
            if not isinstance(written, list):
                raise GatewayConfigError(f"{path}: grids: a list of grids (code, name, level, parent) beside grids_csv, "
                                         f"or none; got {type(written).__name__} {str(written)[:60]!r}")
            raw["grids"] = [*written, *_grid_rows(_named_file(path, raw, "grids_csv"))]  # not into an anchor's list
        if isinstance(raw, dict) and "grids_geojson" in raw:
            shapes_path = _named_file(path, raw, "grids_geojson")
            if shapes_path.is_file() and (size := shapes_path.stat().st_size) > gridmap.MAX_FILE_BYTES:
                raise GatewayConfigError(f"{shapes_path}: {size:,} bytes, at most {gridmap.MAX_FILE_BYTES:,} (64 MiB); simplify "
                                         "the boundaries (a GIS's simplify tool keeps their shape to a metre)")
            text = _text(shapes_path)
            try:
                geojson = json.loads(text)
            except ValueError as exc:
                raise GatewayConfigError(f"{shapes_path}: not JSON ({exc})") from None
            try:
                shapes = gridmap.parse_geojson(geojson, str(shapes_path))  # named as the CSV's rows are
            except ValueError as exc:
                raise GatewayConfigError(str(exc)) from None
            # in WGS 84, as the cameras' locations come on the wire; a system misspelt is refused below, by its key
            system = raw.get("grids_coordinates", "wgs84")
            raw["grid_shapes"] = gridmap.to_wgs84(shapes, system) if system in coordinates.SYSTEMS else shapes
        tables = Tables.model_validate(raw)
    except ValidationError as exc:
        raise GatewayConfigError(f"{path}: {_errors(exc, Tables, raw)}") from None
    # a category's type misspelt (illegal_parkng) or left out loaded, and each such incident was a dead letter
    if missing := [t for t in wire.BOX_TYPES if tables.category(t) is None]:
        log.warning("%s: no category for %s, which xueliang's boxes send: each such incident will be set aside as a "
                    "dead letter (categories: %s)", path, ", ".join(missing), ", ".join(c.type for c in tables.categories))
    return tables


def load_gateway_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        raw = _yaml(path, MAX_CONFIG_BYTES)  # 38 MB of allowed_hosts took 20 s to read
        if raw is None:  # a file emptied (a copy cut off, a deploy that wrote nothing) ran the demo city's tables
            raise GatewayConfigError(f"{path}: empty (or comments only): write the city's tables and database at "
                                     "least; every key left out has its default, the tables' the demo city's")
        if not isinstance(raw, dict):  # pydantic said "Input should be a valid dictionary or instance of GatewayConfig"
            raise GatewayConfigError(f"{path}: expected a mapping with broker, database, http and tables")
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise GatewayConfigError(f"{path}: {_errors(exc, GatewayConfig)}") from None
    if not config.tables.is_absolute():
        config = config.model_copy(update={"tables": (folder_of(path) / config.tables).resolve()})
    return config
