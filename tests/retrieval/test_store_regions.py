"""Region multivectors (MaxSim) in both store backends, and an edge shard from before them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from retrieval.test_store_contract import DIM, at_angle, axis, iid, make_store, point

from mmrag.config import StoreSettings
from mmrag.errors import InvalidInput, NotFound
from mmrag.retrieval import edge_shard
from mmrag.retrieval.store import REGION_VECTOR, ImagePoint, SparseVector, VectorStore, point_id
from mmrag.retrieval.store_edge import EdgeVectorStore


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    backend = make_store(request.param, tmp_path)
    backend.ensure_collection(DIM)
    yield backend
    backend.close()


def region(label: str, box: list[float], score: float = 0.9) -> dict[str, object]:
    return {"label": label, "box": box, "score": score}


def test_region_search_ranks_by_best_region_and_names_it(store: VectorStore) -> None:
    # Image 1's whole-image vector points away from the query; one of its crops matches.
    store.upsert([point(1, axis(2)), point(2, axis(3)), point(3, axis(0))])
    store.set_regions(
        iid(1),
        np.stack([axis(4), at_angle(10)]),
        [region("blue square", [0, 0, 5, 5]), region("red circle", [10, 10, 20, 20], 0.7)],
    )
    store.set_regions(iid(2), np.stack([at_angle(60)]), [region("red circle", [1, 2, 3, 4])])

    hits = store.search_regions(axis(0), limit=5)

    # Only images with regions come back, best crop first; image 3 has none.
    assert [hit.image_id for hit in hits] == [iid(1), iid(2)]
    assert hits[0].score == pytest.approx(np.cos(np.radians(10)), abs=1e-4)
    assert hits[0].region == {
        "label": "red circle",
        "box": [10, 10, 20, 20],
        "score": 0.7,
        "match": pytest.approx(np.cos(np.radians(10)), abs=1e-4),
    }
    assert hits[1].region is not None
    assert hits[1].region["box"] == [1, 2, 3, 4]
    assert store.count_regions() == 2


def test_setting_no_regions_removes_them(store: VectorStore) -> None:
    store.upsert([point(1)])
    store.set_regions(iid(1), np.stack([axis(0)]), [region("a", [0, 0, 1, 1])])
    store.set_regions(iid(1), np.zeros((0, DIM), np.float32), [])

    assert store.search_regions(axis(0), limit=5) == []
    assert store.count_regions() == 0
    assert store.get([iid(1)])[iid(1)]["regions"] == []
    # The image itself is untouched.
    assert [hit.image_id for hit in store.search(axis(0), "image", 5)] == [iid(1)]


def test_bad_region_writes_are_refused(store: VectorStore) -> None:
    store.upsert([point(1)])
    with pytest.raises(InvalidInput, match="2 region vectors for 1 regions"):
        store.set_regions(iid(1), np.stack([axis(0), axis(1)]), [region("a", [0, 0, 1, 1])])
    with pytest.raises(InvalidInput, match="shape"):
        store.set_regions(iid(1), np.ones((1, DIM + 1), np.float32), [region("a", [0, 0, 1, 1])])
    nan = np.full((1, DIM), np.nan, np.float32)
    with pytest.raises(InvalidInput, match="NaN"):
        store.set_regions(iid(1), nan, [region("a", [0, 0, 1, 1])])
    with pytest.raises(NotFound):
        store.set_regions(iid(9), np.stack([axis(0)]), [region("a", [0, 0, 1, 1])])
    assert store.count_regions() == 0


def test_hybrid_with_regions_adds_a_weighted_third_arm(store: VectorStore) -> None:
    # Image 1 wins on the image vector, image 2 only through a region.
    store.upsert([point(1, axis(0)), point(2, axis(3))])
    store.set_regions(iid(2), np.stack([axis(0)]), [region("red circle", [1, 1, 9, 9])])
    empty = SparseVector([], [])

    plain = store.search_hybrid(axis(0), "image", empty, limit=2)
    assert plain[0].image_id == iid(1)
    assert plain[0].region is None

    fused = store.search_hybrid(axis(0), "image", empty, limit=2, region_weight=3.0)
    # Image 2 is second on images but first, weighted 3, on regions; image 1 has no regions.
    assert [hit.image_id for hit in fused] == [iid(2), iid(1)]
    assert fused[0].score > fused[1].score == pytest.approx(plain[0].score)
    assert fused[0].region is not None
    assert fused[0].region["label"] == "red circle"
    # A floor above image 2's crop match leaves the region arm empty.
    floored = store.search_hybrid(
        axis(0), "image", empty, limit=2, region_weight=3.0, region_floor=1.01
    )
    assert [hit.image_id for hit in floored] == [iid(1), iid(2)]
    with pytest.raises(InvalidInput, match="region weight"):
        store.search_hybrid(axis(0), "image", empty, limit=2, region_weight=-1)


def test_an_edge_shard_from_before_regions_is_migrated(tmp_path: Path) -> None:
    """A data dir written by the previous release (no region vector) opens, keeps its points
    and vectors, and takes regions afterwards."""
    settings = StoreSettings()
    paths = edge_shard.ShardPaths(tmp_path, settings.collection)
    paths.root.mkdir(parents=True)
    old_config = edge_shard.shard_config(DIM, settings)
    old_config = qe.EdgeConfig(
        vectors={
            name: params for name, params in old_config.vectors.items() if name != REGION_VECTOR
        },
        sparse_vectors=old_config.sparse_vectors,
    )
    generation = paths.next_generation()
    old = edge_shard.create(generation, old_config)
    old.update(
        qe.UpdateOperation.upsert_points(
            [qe.Point(point_id(iid(n)), {"image": axis(n).tolist()}, {"n": n}) for n in (1, 2)]
        )
    )
    old.flush()
    old.close()
    paths.publish(generation)

    store = EdgeVectorStore(tmp_path, settings)
    try:
        store.ensure_collection(DIM)
        assert paths.live() != generation
        assert not generation.exists()
        assert store.get([iid(1), iid(2)]) == {iid(1): {"n": 1}, iid(2): {"n": 2}}
        assert [h.image_id for h in store.search(axis(2), "image", 1)] == [iid(2)]
        store.set_regions(iid(1), np.stack([axis(5)]), [region("x", [0, 0, 2, 2])])
        assert [h.image_id for h in store.search_regions(axis(5), 1)] == [iid(1)]
    finally:
        store.close()


def test_a_qdrant_collection_from_before_regions_says_how_to_get_them() -> None:
    from qdrant_client import models

    from mmrag.config import StoreBackend
    from mmrag.errors import Unavailable
    from mmrag.retrieval.store_qdrant import QdrantServerStore

    store = QdrantServerStore(StoreSettings(backend=StoreBackend.QDRANT, url=":memory:"))
    vector = models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    client = store._client  # the collection an older release made, on the same client
    client.create_collection(
        "mmrag_images",
        vectors_config={"image": vector, "text": vector},
        sparse_vectors_config={
            "caption_sparse": models.SparseVectorParams(modifier=models.Modifier.IDF)
        },
    )
    store.ensure_collection(DIM)
    store.upsert([ImagePoint(iid(1), axis(0), {})])

    assert [h.image_id for h in store.search(axis(0), "image", 1)] == [iid(1)]
    assert store.count_regions() == 0
    with pytest.raises(Unavailable, match="created before region vectors"):
        store.search_regions(axis(0), 1)
    with pytest.raises(Unavailable, match="new collection"):
        store.set_regions(iid(1), np.stack([axis(0)]), [region("x", [0, 0, 1, 1])])
    store.close()
