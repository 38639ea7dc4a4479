"""How read records are shown on the wire: camelCase keys, ISO-8601 times.

The records the read side returns (`projections.queries`' run record, history and
journal entries; the outbox's dead letters) are frozen dataclasses decorated with
`@wire_record`: each field is declared once, in snake_case, and `to_wire()` gives
the record as the HTTP API and the CLI's `--json` show it, through a pydantic
`TypeAdapter` (camelCase aliases, `Field(exclude=True)` for columns the wire does
not show). The API declares the same classes as its response models, so the
OpenAPI document describes exactly what `to_wire()` returns (`wire_values()` is
the same before times and enums become text, for orjson). Building a record
validates nothing (a dataclass from a row); only serialising it runs pydantic.

Pure: no I/O, nothing of ours imported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, TypeAdapter, WithJsonSchema
from pydantic.alias_generators import to_camel

WIRE_CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                         serialize_by_alias=True,
                         json_schema_serialization_defaults_required=True)
"""camelCase aliases; in the documented (serialisation) schema every field is required:
`to_wire()` always sends every key, null when unset."""


def _iso(moment: datetime) -> str:
    return moment.isoformat()


Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
"""A time, shown as `datetime.isoformat()` (`2024-01-01T00:00:00+00:00`)."""


_camel = functools.lru_cache(maxsize=1024)(to_camel)  # a pure function's bounded memo:
# `to_camel` runs regular expressions, several microseconds a key on every read


def camel_keys(value: dict[str, Any]) -> dict[str, Any]:
    """`value` with its top-level keys in camelCase (`step_id` -> `stepId`)."""
    return {_camel(key): item for key, item in value.items()}


def camel_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of `model`'s JSON with its property names in camelCase: the
    documented shape of a stored `model.model_dump(mode="json")` shown through
    `camel_keys`. References to nested definitions become `{}` (any value)."""
    schema = TypeAdapter(model).json_schema(mode="serialization")
    schema.pop("$defs", None)
    schema["properties"] = {to_camel(name): _no_refs(prop)
                            for name, prop in schema.get("properties", {}).items()}
    if "required" in schema:
        schema["required"] = [to_camel(name) for name in schema["required"]]
    return schema


def _no_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {} if "$ref" in schema else {k: _no_refs(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_no_refs(item) for item in schema]
    return schema


class WireRecord:
    """Base of the `@wire_record` dataclasses: `to_wire()` is the record on the wire."""

    __slots__ = ()
    __wire_adapter__: ClassVar[TypeAdapter[Any]]

    def to_wire(self) -> dict[str, Any]:
        """The record as the HTTP API shows it: a JSON-ready dict, camelCase keys."""
        wire: dict[str, Any] = type(self).__wire_adapter__.dump_python(self, mode="json")
        return wire

    @classmethod
    def from_wire(cls: type[R], data: dict[str, Any]) -> R:
        """The record `to_wire()` showed as `data` (a client reading the HTTP API);
        pydantic's `ValidationError` when `data` is not such a record."""
        record: R = cls.__wire_adapter__.validate_python(data)
        return record

    def wire_values(self) -> dict[str, Any]:
        """`to_wire()` with times and enums still Python objects, for an encoder that
        writes them as `to_wire` does (orjson: ISO 8601 times, enum values). Cheaper:
        no Python call per time field (the API's GET routes use it)."""
        values: dict[str, Any] = type(self).__wire_adapter__.dump_python(self)
        return values


R = TypeVar("R", bound=WireRecord)
Rec = TypeVar("Rec", bound=type[WireRecord])


def wire_record(cls: Rec) -> Rec:
    """Class decorator, put above `@dataclass`: camelCase aliases for every field and
    the adapter `to_wire` serialises with."""
    cls.__pydantic_config__ = WIRE_CONFIG  # type: ignore[attr-defined]
    cls.__wire_adapter__ = TypeAdapter(cls)
    return cls


@dataclass(frozen=True)  # no slots: `Page[X](...)` sets `__orig_class__` on the instance
class Page(Generic[R]):
    """A list on the wire: `{data: [...], nextCursor}` (null on the last page)."""

    __pydantic_config__: ClassVar[ConfigDict] = WIRE_CONFIG

    data: Sequence[R]
    next_cursor: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The page as the HTTP API shows it (its records' `to_wire()`)."""
        return self._shown(WireRecord.to_wire)

    def wire_values(self) -> dict[str, Any]:
        """The page with its records' `wire_values()` (see there)."""
        return self._shown(WireRecord.wire_values)

    def _shown(self, show: Callable[[WireRecord], dict[str, Any]]) -> dict[str, Any]:
        return {"data": [show(item) for item in self.data], "nextCursor": self.next_cursor}
