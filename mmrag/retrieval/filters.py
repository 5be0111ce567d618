"""The search filter callers write, and its translation to the store's neutral condition tree.

Unknown fields are refused (``extra="forbid"``): a typo in a filter must not silently widen
a search.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from mmrag.errors import InvalidInput
from mmrag.retrieval.items import METADATA_KEY_PATTERN
from mmrag.retrieval.json_bounds import INT64_MAX, INT64_MIN, check_int64
from mmrag.retrieval.store import (
    Condition,
    DateRange,
    Filter,
    MatchAny,
    MatchValue,
    NumberRange,
)

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MetadataKey = Annotated[str, StringConstraints(pattern=METADATA_KEY_PATTERN)]
# A label as the annotation writer keys its count (see annotations.count_key).
CountKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(_[a-z0-9]+)*$", max_length=64)]
_MAX_TERMS = 64
B = TypeVar("B", float, datetime)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def not_a_bool(value: object) -> object:
    """For a before-validator on a number: Pydantic's lax mode reads true as 1, but in JSON a
    boolean is not a number, so it is refused."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


def _one_end_at_least(schema: dict[str, Any]) -> None:
    # At least one end given, and not as null.
    schema["anyOf"] = [
        {"required": [end], "properties": {end: {"not": {"type": "null"}}}}
        for end in ("gte", "lte")
    ]


class Bounds(_Strict, Generic[B]):
    """An inclusive range; either end may be open, not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_end_at_least)

    gte: B | None = None
    lte: B | None = None

    _bounds_are_not_bools = field_validator("gte", "lte", mode="before")(not_a_bool)

    @model_validator(mode="after")
    def _ordered(self) -> Bounds[B]:
        if self.gte is None and self.lte is None:
            raise ValueError("give gte, lte or both")
        if self.gte is not None and self.lte is not None and self.gte > self.lte:
            raise ValueError("gte is above lte")
        return self


NumberBounds = Bounds[Annotated[float, Field(allow_inf_nan=False)]]


class DateBounds(Bounds[datetime]):
    @field_validator("gte", "lte", mode="before")
    @classmethod
    def _a_date_string(cls, value: object) -> object:
        # Pydantic would read a number as a Unix time; the schema promises ISO 8601 text.
        if value is not None and not isinstance(value, (str, datetime)):
            raise ValueError("a date bound is ISO 8601 text, such as 2026-01-31T12:00:00Z")
        return value


class LabelFilter(_Strict):
    any: list[Label] = Field(default_factory=list, max_length=_MAX_TERMS)
    all: list[Label] = Field(default_factory=list, max_length=_MAX_TERMS)
    none: list[Label] = Field(default_factory=list, max_length=_MAX_TERMS)


# What the store can hold: Qdrant keeps integers as signed 64-bit and has no infinities.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MetadataValue = str | Int64 | FiniteFloat | bool | NumberBounds


def _closed_maps(schema: dict[str, Any]) -> None:
    """Pydantic states the key pattern of ``metadata`` and ``counts`` as patternProperties
    but leaves other keys open; the API refuses them, so the schema says so."""
    for name in ("metadata", "counts"):
        for variant in schema["properties"][name]["anyOf"]:
            if variant.get("type") == "object":
                variant["additionalProperties"] = False


class SearchFilter(_Strict):
    """What a search may be restricted to. Every field is optional; all given must hold."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_closed_maps)

    labels: LabelFilter | None = None
    metadata: dict[MetadataKey, MetadataValue] | None = Field(None, max_length=_MAX_TERMS)
    # How many boxes a detection or grounding run found per label: {"person": {"gte": 2}}.
    counts: dict[CountKey, NumberBounds] | None = Field(None, max_length=_MAX_TERMS)
    created: DateBounds | None = None
    width: NumberBounds | None = None
    height: NumberBounds | None = None
    source: Literal["upload", "path", "url", "sample"] | None = None
    format: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,10}$")] | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _int64_values(cls, value: object) -> object:
        # Before the union: an integer past 64 bits would otherwise pass as a float, and
        # match nothing it was meant to.
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, int) and not isinstance(item, bool):
                    try:
                        check_int64(item, f"metadata.{key}")
                    except InvalidInput as error:
                        raise ValueError(error.detail) from None
        return value

    def to_store_filter(self) -> Filter:
        must: list[Condition] = []
        must_not: list[Condition] = []
        if self.labels:
            if self.labels.any:
                must.append(MatchAny("labels", tuple(self.labels.any)))
            must.extend(MatchValue("labels", label) for label in self.labels.all)
            if self.labels.none:
                must_not.append(MatchAny("labels", tuple(self.labels.none)))
        for key, value in (self.metadata or {}).items():
            must.append(_metadata_condition(f"metadata.{key}", value))
        for key, count in (self.counts or {}).items():
            must.append(NumberRange(f"counts.{key}", count.gte, count.lte))
        if self.created:
            must.append(DateRange("created", self.created.gte, self.created.lte))
        for name, bounds in (("width", self.width), ("height", self.height)):
            if bounds:
                must.append(NumberRange(name, bounds.gte, bounds.lte))
        if self.source:
            must.append(MatchValue("source.kind", self.source))
        if self.format:
            must.append(MatchValue("format", self.format))
        return Filter(tuple(must), tuple(must_not))


def _metadata_condition(key: str, value: MetadataValue) -> Condition:
    if isinstance(value, Bounds):
        return NumberRange(key, value.gte, value.lte)
    if isinstance(value, float):
        # Exact float equality is meaningless after JSON round trips: match a point range.
        return NumberRange(key, value, value)
    return MatchValue(key, value)
