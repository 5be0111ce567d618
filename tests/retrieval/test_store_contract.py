"""The behaviour every VectorStore backend must share; each test runs on both backends."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mmrag.config import StoreBackend, StoreSettings
from mmrag.errors import DimensionMismatchError, InvalidInput, NotFound, Unavailable
from mmrag.retrieval.store import (
    DateRange,
    Filter,
    Hit,
    ImagePoint,
    MatchAny,
    MatchValue,
    NumberRange,
    SparseVector,
    VectorStore,
)
from mmrag.retrieval.store_common import RRF_K, hybrid_candidates
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.store_qdrant import QdrantServerStore

DIM = 8
Vector = npt.NDArray[np.float32]


def make_store(backend: str, directory: Path) -> VectorStore:
    if backend == "edge":
        return EdgeVectorStore(directory, StoreSettings())
    return QdrantServerStore(StoreSettings(backend=StoreBackend.QDRANT, url=":memory:"))


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    backend = make_store(request.param, tmp_path)
    backend.ensure_collection(DIM)
    yield backend
    backend.close()


def iid(number: int) -> str:
    return f"{number:032x}"


def axis(index: int) -> Vector:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[index] = 1.0
    return vector


def at_angle(degrees: float) -> Vector:
    """A unit vector in the plane of axes 0 and 1, ``degrees`` away from axis 0."""
    radians = math.radians(degrees)
    return (math.cos(radians) * axis(0) + math.sin(radians) * axis(1)).astype(np.float32)


def point(number: int, vector: Vector | None = None, **payload: object) -> ImagePoint:
    return ImagePoint(iid(number), axis(0) if vector is None else vector, dict(payload))


def ids(hits: list[Hit]) -> list[str]:
    return [hit.image_id for hit in hits]


# -- writes and reads ------------------------------------------------------------------------


def test_upsert_get_existing_delete(store: VectorStore) -> None:
    store.upsert([point(1, caption="one"), point(2, caption="two")])

    assert store.get([iid(1), iid(2), iid(3)]) == {
        iid(1): {"caption": "one"},
        iid(2): {"caption": "two"},
    }
    assert store.existing([iid(1), iid(3)]) == {iid(1)}

    store.delete([iid(1), iid(3)])

    assert store.existing([iid(1), iid(2)]) == {iid(2)}
    assert store.count() == 1


def test_same_id_twice_is_one_point(store: VectorStore) -> None:
    store.upsert([point(7, caption="first")])
    store.upsert([point(7, at_angle(90), caption="second")])

    assert store.count() == 1
    assert store.get([iid(7)]) == {iid(7): {"caption": "second"}}
    stored = store.get_vector(iid(7), "image")
    assert stored is not None
    np.testing.assert_allclose(stored, at_angle(90), atol=1e-6)


def test_set_payload_merges(store: VectorStore) -> None:
    store.upsert([point(1, caption="a cat", labels=["cat"])])

    store.set_payload(iid(1), {"labels": ["cat", "animal"], "rating": 5})

    assert store.get([iid(1)])[iid(1)] == {
        "caption": "a cat",
        "labels": ["cat", "animal"],
        "rating": 5,
    }


def test_set_payload_of_missing_point_is_not_found(store: VectorStore) -> None:
    with pytest.raises(NotFound):
        store.set_payload(iid(404), {"caption": "x"})


def test_set_text_adds_caption_vectors(store: VectorStore) -> None:
    store.upsert([point(1), point(2)])
    assert store.get_vector(iid(1), "text") is None
    assert store.search(axis(3), "text", limit=5) == []

    store.set_text(iid(1), axis(3), SparseVector([11], [1.0]))

    text = store.get_vector(iid(1), "text")
    assert text is not None
    np.testing.assert_allclose(text, axis(3), atol=1e-6)
    assert ids(store.search(axis(3), "text", limit=5)) == [iid(1)]
    assert ids(store.search_sparse(SparseVector([11], [1.0]), limit=5)) == [iid(1)]
    with pytest.raises(NotFound):
        store.set_text(iid(404), axis(3), SparseVector([11], [1.0]))


def test_datetime_payload_is_stored_as_rfc3339(store: VectorStore) -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    store.upsert([point(1, created=moment)])

    assert store.get([iid(1)])[iid(1)]["created"] == "2024-05-01T12:00:00+00:00"
    assert store.count(Filter(must=(DateRange("created", gte=moment),))) == 1


# -- search ------------------------------------------------------------------------------------


def test_dense_search_ranks_by_cosine(store: VectorStore) -> None:
    angles = {1: 60.0, 2: 10.0, 3: 90.0, 4: 30.0, 5: 45.0}
    store.upsert([point(n, at_angle(a)) for n, a in angles.items()])

    hits = store.search(axis(0), "image", limit=5)

    assert ids(hits) == [iid(2), iid(4), iid(5), iid(1), iid(3)]
    expected = [math.cos(math.radians(angles[n])) for n in (2, 4, 5, 1, 3)]
    np.testing.assert_allclose([hit.score for hit in hits], expected, atol=1e-5)


def test_dense_search_on_the_text_vector(store: VectorStore) -> None:
    store.upsert(
        [
            ImagePoint(iid(1), axis(0), {}, text_vector=at_angle(80)),
            ImagePoint(iid(2), axis(1), {}, text_vector=at_angle(5)),
        ]
    )

    assert ids(store.search(axis(0), "text", limit=2)) == [iid(2), iid(1)]
    assert ids(store.search(axis(0), "image", limit=2)) == [iid(1), iid(2)]


def test_sparse_search_weights_and_idf(store: VectorStore) -> None:
    # Term 1 is in every document (low IDF), term 2 only in two of them (high IDF).
    store.upsert(
        [
            ImagePoint(iid(1), axis(0), {}, sparse=SparseVector([1], [0.9])),
            ImagePoint(iid(2), axis(0), {}, sparse=SparseVector([1, 2], [0.5, 0.4])),
            ImagePoint(iid(3), axis(0), {}, sparse=SparseVector([1, 2], [0.5, 0.8])),
            ImagePoint(iid(4), axis(0), {}, sparse=SparseVector([1], [0.2])),
        ]
    )

    hits = store.search_sparse(SparseVector([2], [1.0]), limit=10)
    assert ids(hits) == [iid(3), iid(2)]  # documents without the term are not hits
    assert hits[0].score > hits[1].score > 0

    both = store.search_sparse(SparseVector([1, 2], [1.0, 1.0]), limit=10)
    assert ids(both)[:2] == [iid(3), iid(2)]  # the rare term outweighs the common one
    assert set(ids(both)) == {iid(n) for n in (1, 2, 3, 4)}


def test_hybrid_is_rrf_of_dense_and_sparse(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    points = []
    for n in range(40):
        vector = rng.normal(size=DIM).astype(np.float32)
        terms = sorted(rng.choice(20, size=3, replace=False).tolist())
        weights = rng.uniform(0.1, 1.0, size=3).tolist()
        points.append(
            ImagePoint(
                iid(n), vector, {"n": n}, text_vector=vector, sparse=SparseVector(terms, weights)
            )
        )
    store.upsert(points)
    query_dense = rng.normal(size=DIM).astype(np.float32)
    query_sparse = SparseVector([2, 5, 7], [1.0, 1.0, 1.0])

    fused = store.search_hybrid(query_dense, "text", query_sparse, limit=10)

    depth = hybrid_candidates(10, 0)
    scores: dict[str, float] = {}
    for branch in (
        store.search(query_dense, "text", limit=depth),
        store.search_sparse(query_sparse, limit=depth),
    ):
        for rank, hit in enumerate(branch):
            scores[hit.image_id] = scores.get(hit.image_id, 0.0) + 1.0 / (RRF_K + rank)
    expected = sorted(scores.items(), key=lambda item: -item[1])[:10]
    assert len(fused) == 10
    np.testing.assert_allclose([h.score for h in fused], [s for _, s in expected], rtol=1e-5)
    # Ties may come back in either order; every fused id must carry its expected score.
    for hit in fused:
        assert scores[hit.image_id] == pytest.approx(hit.score, rel=1e-5)
    assert fused[0].payload == {"n": int(fused[0].image_id, 16)}


def test_hybrid_filters_and_pages(store: VectorStore) -> None:
    # Dense ranks the even points 0, 2, 4, 6; sparse ranks them 2, 6, 0, 4: no RRF ties.
    sparse_weight = {0: 2.0, 2: 4.0, 4: 1.0, 6: 3.0}
    store.upsert(
        [
            ImagePoint(
                iid(n),
                at_angle(n * 10),
                {"labels": ["even" if n % 2 == 0 else "odd"]},
                sparse=SparseVector([1], [sparse_weight.get(n, 5.0)]),
            )
            for n in range(8)
        ]
    )
    even = Filter(must=(MatchValue("labels", "even"),))
    query = SparseVector([1], [1.0])

    hits = store.search_hybrid(axis(0), "image", query, limit=10, filter=even)
    assert ids(hits) == [iid(2), iid(0), iid(6), iid(4)]

    page = store.search_hybrid(axis(0), "image", query, limit=2, offset=1, filter=even)
    assert ids(page) == [iid(0), iid(6)]


def test_offset_and_limit(store: VectorStore) -> None:
    store.upsert([point(n, at_angle(n * 8)) for n in range(10)])

    everything = ids(store.search(axis(0), "image", limit=10))
    assert everything == [iid(n) for n in range(10)]
    assert ids(store.search(axis(0), "image", limit=3, offset=2)) == everything[2:5]
    assert ids(store.search(axis(0), "image", limit=5, offset=8)) == everything[8:]
    assert store.search(axis(0), "image", limit=5, offset=10) == []
    with pytest.raises(InvalidInput):
        store.search(axis(0), "image", limit=0)
    with pytest.raises(InvalidInput):
        store.search(axis(0), "image", limit=1, offset=-1)


# -- filters -----------------------------------------------------------------------------------

DAY = datetime(2024, 3, 1, tzinfo=UTC)
CATALOGUE = {
    1: {
        "labels": ["cat", "animal"],
        "width": 640,
        "created": DAY,
        "metadata": {"camera": "x100", "ok": True, "iso": 200},
    },
    2: {
        "labels": ["dog", "animal"],
        "width": 1024,
        "created": DAY + timedelta(days=1),
        "metadata": {"camera": "x100", "ok": False, "iso": 400},
    },
    3: {
        "labels": ["car"],
        "width": 1920,
        "created": DAY + timedelta(days=2),
        "metadata": {"camera": "z9", "ok": True, "iso": 800},
    },
    4: {
        "labels": ["cat"],
        "width": 320,
        "created": DAY + timedelta(days=3),
        "metadata": {"camera": "z9", "iso": 100},
    },
    5: {
        "labels": [],
        "width": 800,
        "created": DAY + timedelta(days=4),
        "source": {"kind": "upload"},
    },
}


@pytest.fixture
def catalogue(store: VectorStore) -> VectorStore:
    store.upsert([point(n, at_angle(n * 10), **payload) for n, payload in CATALOGUE.items()])
    return store


def matching(store: VectorStore, filter: Filter) -> set[int]:
    """The catalogue numbers a filter selects, the same through search, count and scroll."""
    by_search = {int(hit.image_id, 16) for hit in store.search(axis(0), "image", 10, filter=filter)}
    by_scroll = {int(hit.image_id, 16) for hit in store.scroll(filter, batch=2)}
    assert by_search == by_scroll
    assert store.count(filter) == len(by_search)
    return by_search


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (Filter(must=(MatchAny("labels", ("cat", "car")),)), {1, 3, 4}),
        (Filter(must=(MatchValue("labels", "cat"), MatchValue("labels", "animal"))), {1}),
        (Filter(must=(MatchValue("metadata.camera", "x100"),)), {1, 2}),
        (Filter(must=(MatchValue("metadata.iso", 800),)), {3}),
        (Filter(must=(MatchValue("metadata.ok", True),)), {1, 3}),
        (Filter(must=(MatchValue("metadata.ok", False),)), {2}),
        (Filter(must=(MatchValue("source.kind", "upload"),)), {5}),
        (Filter(must=(NumberRange("width", gte=640, lte=1024),)), {1, 2, 5}),
        (Filter(must=(NumberRange("width", gte=1000),)), {2, 3}),
        (Filter(must=(NumberRange("metadata.iso", lte=200),)), {1, 4}),
        (
            Filter(
                must=(
                    DateRange("created", gte=DAY + timedelta(days=1), lte=DAY + timedelta(days=3)),
                )
            ),
            {2, 3, 4},
        ),
        # A naive datetime means UTC in both backends.
        (Filter(must=(DateRange("created", lte=datetime(2024, 3, 2)),)), {1, 2}),
        (Filter(must_not=(MatchAny("labels", ("animal",)),)), {3, 4, 5}),
        (
            Filter(must=(MatchValue("labels", "cat"),), must_not=(MatchValue("labels", "animal"),)),
            {4},
        ),
        (Filter(must=(MatchAny("labels", ("unicorn",)),)), set()),
    ],
    ids=[
        "labels-any",
        "labels-all",
        "metadata-str",
        "metadata-int",
        "metadata-true",
        "metadata-false",
        "nested-key",
        "number-range",
        "number-gte",
        "metadata-range",
        "date-range",
        "naive-date",
        "must-not",
        "must-and-must-not",
        "nothing",
    ],
)
def test_filter(catalogue: VectorStore, filter: Filter, expected: set[int]) -> None:
    assert matching(catalogue, filter) == expected


def test_filter_applies_to_sparse_search(store: VectorStore) -> None:
    store.upsert(
        [
            ImagePoint(
                iid(n),
                axis(0),
                {"labels": ["a" if n < 2 else "b"]},
                sparse=SparseVector([4], [1.0]),
            )
            for n in range(4)
        ]
    )
    only_b = Filter(must=(MatchValue("labels", "b"),))
    assert set(ids(store.search_sparse(SparseVector([4], [1.0]), 10, filter=only_b))) == {
        iid(2),
        iid(3),
    }


def test_refused_filters(store: VectorStore) -> None:
    for bad in (
        Filter(must=(MatchAny("labels", ("a", 1)),)),
        Filter(must=(MatchAny("labels", ()),)),
        Filter(must=(MatchAny("flag", (True,)),)),
    ):
        with pytest.raises(InvalidInput):
            store.count(bad)


# -- count, scroll, shape checks ---------------------------------------------------------------


def test_count_and_scroll_cover_every_point_once(store: VectorStore) -> None:
    store.upsert([point(n, at_angle(n), n=n) for n in range(23)])

    seen = [hit.image_id for hit in store.scroll(batch=5)]

    assert sorted(seen) == [iid(n) for n in range(23)]
    assert store.count() == 23
    assert store.count(Filter(must=(NumberRange("n", gte=20),))) == 3


def test_vectors_of_the_wrong_size_are_refused(store: VectorStore) -> None:
    with pytest.raises(InvalidInput):
        store.upsert([ImagePoint(iid(1), np.ones(DIM + 1, dtype=np.float32), {})])
    with pytest.raises(InvalidInput):
        store.search(np.ones(DIM - 1, dtype=np.float32), "image", limit=1)
    with pytest.raises(InvalidInput):
        store.upsert([ImagePoint(iid(1), np.full(DIM, np.nan, dtype=np.float32), {})])
    with pytest.raises(InvalidInput):
        store.get(["not-an-id"])
    assert store.count() == 0


def test_a_different_dimension_is_refused(store: VectorStore) -> None:
    store.ensure_collection(DIM)  # the same size again is fine
    with pytest.raises(DimensionMismatchError):
        store.ensure_collection(DIM * 2)


def test_info_counts_points(store: VectorStore) -> None:
    store.upsert([point(n, at_angle(n)) for n in range(5)])

    info = store.info()

    assert info.points == 5
    assert info.backend == store.backend_name


@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_before_ensure_collection(backend: str, tmp_path: Path) -> None:
    fresh = make_store(backend, tmp_path)
    try:
        assert fresh.count() == 0
        assert fresh.get([iid(1)]) == {}
        assert list(fresh.scroll()) == []
        assert fresh.info().points == 0
        with pytest.raises(Unavailable):
            fresh.upsert([point(1)])
        with pytest.raises(Unavailable):
            fresh.search(axis(0), "image", limit=1)
    finally:
        fresh.close()
