"""Gateway configuration: broker, database URL, HTTP, and the city's tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.deadlines import ServiceLevel, parse_service_level

IDENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TABLES_DIR = Path(__file__).resolve().parent / "tables"


class GatewayConfigError(ValueError):
    """The gateway configuration or a table is wrong; the message says where."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Department(Strict):
    id: str = Field(pattern=IDENT)
    name: str = Field(min_length=1)


class Category(Strict):
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", title="Incident type from the edge")
    code: str = Field(min_length=1, title="The city's category code")
    name: str = Field(min_length=1, title="Category name shown to people")
    department: str = Field(pattern=IDENT)
    service_level: str = Field(title="e.g. 30s, 1h, 3 working days")

    @field_validator("service_level")
    @classmethod
    def _level(cls, v: str) -> str:
        parse_service_level(v)
        return v

    @property
    def level(self) -> ServiceLevel:
        return parse_service_level(self.service_level)


class Tables(Strict):
    departments: list[Department] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs(self) -> "Tables":
        known = {d.id for d in self.departments}
        types = set()
        for c in self.categories:
            if c.department not in known:
                raise ValueError(f"category {c.type!r}: department {c.department!r} is not in departments {sorted(known)}")
            if c.type in types:
                raise ValueError(f"category {c.type!r} appears twice")
            types.add(c.type)
        return self

    def category(self, incident_type: str) -> Category | None:
        return next((c for c in self.categories if c.type == incident_type), None)


class Broker(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = Field(default=None, title="CA certificate file: connect with TLS and check the broker")
    client_id: str = Field(default="xl-gateway-1", pattern=IDENT, title="Unique per gateway process")


class Http(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class GatewayConfig(Strict):
    broker: Broker = Broker()
    database: str = Field(default="sqlite:///data/gateway/gateway.sqlite", title="SQLAlchemy URL")
    http: Http = Http()
    tables: Path = Field(default=TABLES_DIR / "demo.yaml", title="The city's tables (YAML)")


def load_tables(path: Path) -> Tables:
    try:
        return Tables.model_validate(yaml.safe_load(Path(path).read_text()))
    except FileNotFoundError:
        raise GatewayConfigError(f"{path}: no such file") from None
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise GatewayConfigError(f"{path}: {errs}") from None


def load_gateway_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        config = GatewayConfig.model_validate(raw)
    except FileNotFoundError:
        raise GatewayConfigError(f"{path}: no such file") from None
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GatewayConfigError(f"{path}: {errs}") from None
    if not config.tables.is_absolute():
        config = config.model_copy(update={"tables": (path.parent / config.tables).resolve()})
    return config
