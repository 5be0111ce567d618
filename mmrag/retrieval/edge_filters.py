"""The neutral filter tree (``store.Filter``) in qdrant-edge's types."""

from __future__ import annotations

import numpy as np
import qdrant_edge as qe

from mmrag.retrieval.store import (
    Condition,
    DateRange,
    Filter,
    MatchAny,
    MatchValue,
    NumberRange,
)
from mmrag.retrieval.store_common import check_filter, utc_iso


def to_edge_filter(filter: Filter | None, having: str | None = None) -> qe.Filter | None:
    """The engine's filter for ``filter``; ``having`` also requires that named vector."""
    filter = filter or Filter()
    if not filter and having is None:
        return None
    check_filter(filter)
    must: list[qe.ConditionType] = [_condition(condition) for condition in filter.must]
    must_not: list[qe.ConditionType] = [_condition(condition) for condition in filter.must_not]
    if having is not None:
        must.append(qe.HasVectorCondition(having))
    return qe.Filter(must=must or None, must_not=must_not or None)


def _condition(condition: Condition) -> qe.FieldCondition:
    if isinstance(condition, MatchValue):
        return qe.FieldCondition(condition.key, match=qe.MatchValue(_match_value(condition.value)))
    if isinstance(condition, MatchAny):
        values = list(condition.values)
        if all(isinstance(value, str) for value in values):
            return qe.FieldCondition(condition.key, match=qe.MatchAny([str(v) for v in values]))
        return qe.FieldCondition(condition.key, match=qe.MatchAny([int(v) for v in values]))
    if isinstance(condition, NumberRange):
        return qe.FieldCondition(
            condition.key, range=qe.RangeFloat(gte=condition.gte, lte=condition.lte)
        )
    if isinstance(condition, DateRange):
        return qe.FieldCondition(
            condition.key,
            range=qe.RangeDateTime(
                gte=utc_iso(condition.gte) if condition.gte else None,
                lte=utc_iso(condition.lte) if condition.lte else None,
            ),
        )
    raise TypeError(f"unknown filter condition {condition!r}")


def _match_value(value: str | int | bool) -> str | int | bool:
    if isinstance(value, bool):
        # qdrant-edge-py 0.9 tries int before bool when it reads a MatchValue, so True becomes
        # the integer 1 and never matches a boolean payload. numpy's bool is not an int to it.
        return np.bool_(value)  # type: ignore[return-value]
    return value
