"""The neutral filter tree (``store.Filter``) in qdrant-client's models."""

from __future__ import annotations

from qdrant_client import models

from mmrag.retrieval.store import (
    Condition,
    DateRange,
    Filter,
    MatchAny,
    MatchValue,
    NumberRange,
)
from mmrag.retrieval.store_common import check_filter, utc_iso


def to_qdrant_filter(filter: Filter | None) -> models.Filter | None:
    if not filter:
        return None
    check_filter(filter)
    must: list[models.Condition] = [_condition(condition) for condition in filter.must]
    must_not: list[models.Condition] = [_condition(condition) for condition in filter.must_not]
    return models.Filter(must=must or None, must_not=must_not or None)


def _condition(condition: Condition) -> models.FieldCondition:
    if isinstance(condition, MatchValue):
        return models.FieldCondition(
            key=condition.key, match=models.MatchValue(value=condition.value)
        )
    if isinstance(condition, MatchAny):
        values = list(condition.values)
        if all(isinstance(value, str) for value in values):
            any_of: list[str] | list[int] = [str(value) for value in values]
        else:
            any_of = [int(value) for value in values]
        return models.FieldCondition(key=condition.key, match=models.MatchAny(any=any_of))
    if isinstance(condition, NumberRange):
        return models.FieldCondition(
            key=condition.key, range=models.Range(gte=condition.gte, lte=condition.lte)
        )
    if isinstance(condition, DateRange):
        # Sent as the same UTC strings as the edge backend, so naive datetimes mean UTC in both.
        return models.FieldCondition(
            key=condition.key,
            range=models.DatetimeRange(
                gte=utc_iso(condition.gte) if condition.gte else None,
                lte=utc_iso(condition.lte) if condition.lte else None,
            ),
        )
    raise TypeError(f"unknown filter condition {condition!r}")
