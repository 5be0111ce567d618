from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from mmrag.config import HnswSettings, StoreBackend, StoreSettings
from mmrag.retrieval.filters import SearchFilter
from mmrag.retrieval.store import (
    DateRange,
    Filter,
    MatchAny,
    MatchValue,
    NumberRange,
    filters_without_graphs,
)
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.store_qdrant import QdrantServerStore


def test_every_field_becomes_a_condition() -> None:
    search_filter = SearchFilter.model_validate(
        {
            "labels": {"any": ["cat", "dog"], "all": ["animal"], "none": ["car"]},
            "metadata": {"camera": "x100", "year": {"gte": 2020}, "rating": 4.5, "ok": True},
            "created": {"gte": "2026-01-01T00:00:00Z"},
            "width": {"lte": 1000},
            "source": "upload",
            "format": "JPEG",
        }
    )

    store_filter = search_filter.to_store_filter()

    assert store_filter.must == (
        MatchAny("labels", ("cat", "dog")),
        MatchValue("labels", "animal"),
        MatchValue("metadata.camera", "x100"),
        NumberRange("metadata.year", 2020, None),
        NumberRange("metadata.rating", 4.5, 4.5),
        MatchValue("metadata.ok", True),
        DateRange("created", datetime(2026, 1, 1, tzinfo=UTC), None),
        NumberRange("width", None, 1000),
        MatchValue("source.kind", "upload"),
        MatchValue("format", "JPEG"),
    )
    assert store_filter.must_not == (MatchAny("labels", ("car",)),)


def test_empty_filter_is_falsy() -> None:
    assert not SearchFilter().to_store_filter()


@pytest.mark.parametrize(
    "body",
    [
        {"colour": "red"},  # unknown field
        {"labels": {"some": ["x"]}},  # unknown nested field
        {"width": {}},  # a range with no bound
        {"width": {"gte": 10, "lte": 5}},  # inverted range
        {"created": {"gte": "2026-02-01T00:00:00Z", "lte": "2026-01-01T00:00:00Z"}},
        {"metadata": {"bad key!": 1}},
        {"labels": {"any": ["x"] * 65}},  # absurdly many terms
        {"source": "ftp"},
    ],
)
def test_bad_filters_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SearchFilter.model_validate(body)


def test_only_filters_on_fields_without_per_value_graphs_walk_with_acorn() -> None:
    assert not filters_without_graphs(None)
    assert not filters_without_graphs(Filter(must=(MatchValue("tenant", "acme"),)))
    assert not filters_without_graphs(Filter(must=(MatchAny("labels", ("dog",)),)))
    assert filters_without_graphs(Filter(must=(NumberRange("width", gte=1600),)))
    assert filters_without_graphs(
        Filter(must=(MatchValue("tenant", "acme"),), must_not=(MatchValue("format", "png"),))
    )


@pytest.mark.parametrize("backend", [StoreBackend.EDGE, StoreBackend.QDRANT])
def test_searches_that_walk_with_acorn_take_their_own_candidate_list(
    tmp_path: Path, backend: StoreBackend
) -> None:
    hnsw = HnswSettings(ef_search=512, acorn_ef_search=96)
    store: EdgeVectorStore | QdrantServerStore
    if backend is StoreBackend.EDGE:
        store = EdgeVectorStore(tmp_path, StoreSettings(hnsw=hnsw))
    else:  # a server's search params; nothing is contacted to build them
        settings = StoreSettings(backend=backend, url="http://127.0.0.1:9", hnsw=hnsw)
        store = QdrantServerStore(settings)

    def candidates_and_acorn(filter: Filter | None) -> tuple[int | None, bool | None]:
        params = store._search_params(filter)
        assert params is not None
        return params.hnsw_ef, params.acorn.enable if params.acorn is not None else None

    try:
        width = candidates_and_acorn(Filter(must=(NumberRange("width", gte=1600),)))
        tenant = candidates_and_acorn(Filter(must=(MatchValue("tenant", "acme"),)))
        unfiltered = candidates_and_acorn(None)
    finally:
        store.close()
    assert width == (96, True)
    assert tenant == (512, None)
    assert unfiltered == (512, None)
