"""What Open311's paths answer in JSON, for /openapi.json: a service (``presentation.georeport_service``) and a
service request (``presentation.georeport``) of GeoReport v2 (https://wiki.open311.org/GeoReport_v2), each field with
what the gateway puts in it. Described only (``open311.described``): the answers are built as the spec has them, JSON or
XML by the path's ``.{fmt}``, and go out as built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Service(BaseModel):
    """One of the city's categories."""

    service_code: str = Field(title="the city's category code")
    service_name: str = Field(title="the category's name")
    description: str = Field(title="its name and the incident type it is raised for: 机动车乱停放 (illegal_parking)")
    metadata: bool = Field(title="false: a request takes no attributes (the gateway takes no requests)")
    type: Literal["realtime"] = Field(title="realtime: its requests are cases handled as they come")
    keywords: str = Field(title="the incident type it is raised for: illegal_parking, garbage, spill, ...")
    group: str = Field(title="the department the tables send its cases to, by id")


class ServiceRequest(BaseModel):
    """A case the token may see."""

    service_request_id: str = Field(title="the case's number")
    status: Literal["open", "closed"] = Field(title="closed once the case is closed or rejected, else open")
    status_notes: str = Field(title="the case's state, in Chinese (待审核, 已派遣, 处置中, 已结案, ...)")
    service_name: str = Field(title="the category's name")
    service_code: str = Field(title="the city's category code (services' service_code)")
    description: str = Field(title="the category's name, the camera and the zone that raised it")
    agency_responsible: str = Field(title="the name of the department the case is with")
    service_notice: None = Field(title="always null")
    requested_datetime: str | None = Field(title="when the case was opened, ISO 8601 in UTC")
    updated_datetime: str | None = Field(title="its last change (its newest timeline entry), ISO 8601 in UTC")
    expected_datetime: str | None = Field(title="its deadline, ISO 8601 in UTC; null while none is set")
    address: str = Field(title="the grid's name")
    address_id: str = Field(title="the grid's code")
    zipcode: None = Field(title="always null")
    lat: float | None = Field(title="WGS 84 latitude of the place, as the camera's zone gives it; null: none given")
    long: float | None = Field(title="WGS 84 longitude")
    media_url: str | None = Field(title="the camera's snapshot, absolute; it takes the request's Authorization header "
                                  "(but with http.public_read); null: none")
