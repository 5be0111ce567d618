"""What only the embedded store does: files on disk, one process per directory, HNSW builds."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as qe

from mmrag.config import HnswSettings, Settings, StoreBackend, StoreSettings
from mmrag.errors import DimensionMismatchError, Unavailable
from mmrag.retrieval import edge_shard, store_edge
from mmrag.retrieval.edge_build import BuildResult, run_build
from mmrag.retrieval.indexing import IndexScheduler
from mmrag.retrieval.store import (
    FILTER_GRAPH_FIELDS,
    INDEXED_FIELDS,
    Filter,
    ImagePoint,
    MatchValue,
    SparseVector,
)
from mmrag.retrieval.store_common import checked_point_id
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.store_qdrant import QdrantServerStore
from mmrag.retrieval.stores import open_store
from mmrag.retrieval.tenants import TENANT_FIELD

DIM = 16


def iid(number: int) -> str:
    return f"{number:032x}"


def clustered(count: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Unit vectors around a few centres: closer to real embeddings than plain noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, DIM))
    vectors = centres[rng.integers(0, 8, count)] + 0.3 * rng.normal(size=(count, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def points(vectors: npt.NDArray[np.float32], start: int = 0) -> list[ImagePoint]:
    return [
        ImagePoint(
            iid(start + n),
            vector,
            {"labels": ["even" if (start + n) % 2 == 0 else "odd"], "n": start + n},
            text_vector=vector,
            sparse=SparseVector([(start + n) % 11], [1.0]),
        )
        for n, vector in enumerate(vectors)
    ]


def exact_top(
    vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32], k: int
) -> list[str]:
    scores = vectors @ (query / np.linalg.norm(query))
    return [iid(int(n)) for n in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeVectorStore]:
    edge = EdgeVectorStore(tmp_path, StoreSettings())
    edge.ensure_collection(DIM)
    yield edge
    edge.close()


def test_reopen_keeps_points_and_payload_indexes(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path, StoreSettings())
    first.ensure_collection(DIM)
    first.upsert(points(clustered(30)))
    first.set_payload(iid(3), {"caption": "kept"})
    first.close()

    again = EdgeVectorStore(tmp_path, StoreSettings())
    try:
        assert again.count() == 30  # readable before ensure_collection
        again.ensure_collection(DIM)
        assert again.get([iid(3)])[iid(3)]["caption"] == "kept"
        assert again.count(Filter(must=(MatchValue("labels", "even"),))) == 15
    finally:
        again.close()


def test_reopen_with_another_dimension_is_refused(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path, StoreSettings())
    first.ensure_collection(DIM)
    first.upsert(points(clustered(3)))
    first.close()

    again = EdgeVectorStore(tmp_path, StoreSettings())
    try:
        with pytest.raises(DimensionMismatchError, match="does not take 32-d vectors"):
            again.ensure_collection(32)
        assert again.count() == 3  # still readable
    finally:
        again.close()


def test_second_open_of_the_same_directory_is_unavailable(
    store: EdgeVectorStore, tmp_path: Path
) -> None:
    with pytest.raises(Unavailable, match="already open"):
        EdgeVectorStore(tmp_path, StoreSettings())


def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    edge = EdgeVectorStore(tmp_path, StoreSettings())
    edge.ensure_collection(DIM)
    edge.close()
    edge.close()  # twice is fine
    with pytest.raises(Unavailable, match="closed"):
        edge.count()


def test_optimize_builds_hnsw_and_keeps_results(store: EdgeVectorStore) -> None:
    vectors = clustered(400)
    store.upsert(points(vectors))
    queries = clustered(5, seed=9)
    before = [[h.image_id for h in store.search(q, "image", 10)] for q in queries]
    assert store.info().indexed_vectors == 0
    assert store.index_backlog().unindexed_points == 400

    assert store.optimize() is True

    info = store.info()
    assert info.indexed_vectors == 800  # image and text vectors of every point
    assert store.index_backlog().unindexed_points == 0
    after = [[h.image_id for h in store.search(q, "image", 10)] for q in queries]
    assert after == before == [exact_top(vectors, q, 10) for q in queries]
    assert store.count() == 400
    assert generations(store) == [Path(store.info().extra["path"]).name]  # old one removed


def test_writes_during_a_build_survive_the_swap(store: EdgeVectorStore) -> None:
    store.upsert(points(clustered(300)))
    result: list[bool] = []
    builder = threading.Thread(target=lambda: result.append(store.optimize()))
    builder.start()
    _wait_for(lambda: store.info().extra["build_phase"] == "building")

    late = clustered(50, seed=5)
    store.upsert(points(late, start=300))
    store.set_payload(iid(1), {"caption": "written during the build"})
    store.delete([iid(2)])
    builder.join(timeout=120)

    assert result == [True]
    assert store.last_build is not None
    assert store.last_build.replayed_operations == 3
    assert store.count() == 349
    assert store.get([iid(1)])[iid(1)]["caption"] == "written during the build"
    assert store.existing([iid(2), iid(310)]) == {iid(310)}
    assert store.search(late[7], "image", 1)[0].image_id == iid(307)


@pytest.fixture
def held_build(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Builds start as usual but do not begin until the returned event is set."""
    release = threading.Event()

    def gated(path: Path, cancel: threading.Event, *, merge_all: bool = False) -> BuildResult:
        release.wait(60)
        return run_build(path, cancel, merge_all=merge_all)

    monkeypatch.setattr(store_edge, "run_build", gated)
    return release


def _limited_store(tmp_path: Path, wait_s: float = 60.0) -> EdgeVectorStore:
    hnsw = HnswSettings(rebuild_after=100, max_unindexed=1_000, max_unindexed_wait_s=wait_s)
    edge = EdgeVectorStore(tmp_path, StoreSettings(hnsw=hnsw))
    edge.ensure_collection(DIM)
    edge.upsert(points(clustered(1_200)))  # past the limit, but no build running: no wait
    return edge


def test_writes_past_max_unindexed_wait_for_the_build_in_flight(
    tmp_path: Path, held_build: threading.Event
) -> None:
    edge = _limited_store(tmp_path)
    try:
        builder = threading.Thread(target=edge.optimize)
        builder.start()
        _wait_for(lambda: edge.info().extra["build_phase"] == "building")
        writer = threading.Thread(target=edge.upsert, args=(points(clustered(10), 1_200),))
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive()  # held back while the build runs
        assert edge.count() == 1_200

        held_build.set()
        builder.join(timeout=120)
        writer.join(timeout=30)

        assert not writer.is_alive()
        assert edge.count() == 1_210
        assert edge.index_backlog().unindexed_points == 10
    finally:
        held_build.set()
        edge.close()


def test_a_build_that_outlasts_the_wait_fails_the_write_as_retryable(
    tmp_path: Path, held_build: threading.Event
) -> None:
    edge = _limited_store(tmp_path, wait_s=0.3)
    try:
        builder = threading.Thread(target=edge.optimize)
        builder.start()
        _wait_for(lambda: edge.info().extra["build_phase"] == "building")

        with pytest.raises(Unavailable, match="retry once it has finished"):
            edge.upsert(points(clustered(10), 1_200))

        held_build.set()
        builder.join(timeout=120)
        assert edge.count() == 1_200
        edge.upsert(points(clustered(10), 1_200))  # room again once the build is in
        assert edge.count() == 1_210
    finally:
        held_build.set()
        edge.close()


def _store_of_several_graphs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: npt.NDArray[np.float32],
    settings: StoreSettings,
) -> EdgeVectorStore:
    """A shard made with a tiny segment cap: each build leaves one more graph, as builds made
    while a million images arrive do under the engine's own cap."""
    capped = qe.EdgeOptimizersConfig(indexing_threshold=1, max_segment_size=8)
    monkeypatch.setattr(edge_shard, "_optimizers", lambda merge_all: capped)
    edge = EdgeVectorStore(tmp_path, settings)
    edge.ensure_collection(DIM)
    monkeypatch.undo()
    for start in range(0, len(data), 200):
        edge.upsert(points(data[start : start + 200], start))
        assert edge.optimize() is True
    assert edge.index_backlog().segments > 3
    return edge


def test_the_scheduler_merges_the_graphs_once_writes_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hnsw = HnswSettings(min_points=100, rebuild_after=1_000, merge_after_idle_s=0.5)
    edge = _store_of_several_graphs(tmp_path, monkeypatch, clustered(600), StoreSettings(hnsw=hnsw))
    scheduler = IndexScheduler(edge, hnsw)
    try:
        edge.upsert(points(clustered(1, seed=3), 600))
        assert not scheduler.check_once()  # writes just happened
        time.sleep(hnsw.merge_after_idle_s)

        assert scheduler.check_once()
        assert edge.index_backlog().segments == 2
        assert not scheduler.check_once()  # nothing new: no second merge
    finally:
        edge.close()


def test_graphs_left_by_capped_segments_merge_into_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = clustered(600)
    edge = _store_of_several_graphs(tmp_path, monkeypatch, data, StoreSettings())
    try:
        queries = clustered(5, seed=11)
        before = [[hit.image_id for hit in edge.search(q, "image", 10)] for q in queries]

        assert edge.merge_segments() is True

        assert edge.index_backlog().segments == 2  # one graph and the appendable segment
        assert edge.info().indexed_vectors == 1200  # every image and caption vector
        after = [[hit.image_id for hit in edge.search(q, "image", 10)] for q in queries]
        assert after == before == [exact_top(data, q, 10) for q in queries]
        persisted = json.loads((Path(edge.info().extra["path"]) / "edge_config.json").read_text())
        assert persisted["optimizers"]["max_segment_size"] is None  # later builds merge as usual
    finally:
        edge.close()


def test_cancelled_build_leaves_the_store_as_it_was(store: EdgeVectorStore) -> None:
    store.upsert(points(clustered(300)))
    result: list[bool] = []
    builder = threading.Thread(target=lambda: result.append(store.optimize()))
    builder.start()
    _wait_for(lambda: store.info().extra["build_phase"] == "building")

    store.cancel_optimize()
    builder.join(timeout=60)

    assert result == [False]
    assert store.info().indexed_vectors == 0
    assert store.count() == 300
    assert generations(store) == [Path(store.info().extra["path"]).name]  # copy removed


def test_a_failed_build_leaves_the_store_as_it_was(
    store: EdgeVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.upsert(points(clustered(50)))
    live = Path(store.info().extra["path"])
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits with status 1

    with pytest.raises(RuntimeError, match="index build"):
        store.optimize()

    monkeypatch.undo()
    assert Path(store.info().extra["path"]) == live
    assert generations(store) == [live.name]
    assert store.count() == 50
    store.upsert(points(clustered(5, seed=3), start=50))  # writes are no longer logged
    assert store.optimize() is True
    assert store.count() == 55


def test_a_builds_copy_links_only_the_files_no_write_touches(store: EdgeVectorStore) -> None:
    store.upsert(points(clustered(300)))
    assert store.optimize() is True
    store.upsert(points(clustered(20, seed=2), start=300))  # an appendable segment too
    live = Path(store.info().extra["path"])
    copy = live.parent / "copy"
    edge_shard.copy_tree(live, copy)

    linked = {p.name for p in copy.rglob("*") if p.is_file() and p.stat().st_nlink > 1}
    assert {"matrix.dat", "links_compressed.bin"} <= linked
    assert linked <= {"matrix.dat", "quantized.data", "links_compressed.bin", "graph.bin"}

    # Building the copy (what the child does: it merges the segments into a new one) leaves
    # the live shard's shared files as they were.
    shared = [p for p in live.rglob("*") if p.is_file() and p.stat().st_nlink > 1]
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shared}
    assert run_build(copy, threading.Event()).optimized
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shared} == digests

    # Writes to the live shard after the copy (a delete and a re-write of built points, a
    # payload) must not reach the copy through a shared file.
    store.delete([iid(3)])
    store.upsert(points(clustered(1, seed=9), start=4))
    store.set_payload(iid(5), {"caption": "after the copy"})
    store.close()
    shard = edge_shard.load(copy)
    try:
        wanted = {iid(n): checked_point_id(iid(n)) for n in (3, 4, 5)}
        kept = shard.retrieve(list(wanted.values()), True, True)
        by_id = {str(record.id): record for record in kept}
        assert set(by_id) == {str(pid) for pid in wanted.values()}
        image = by_id[str(wanted[iid(4)])].vector
        assert isinstance(image, dict)
        assert np.allclose(np.asarray(image["image"], dtype=np.float32), clustered(300)[4])
        assert "caption" not in (by_id[str(wanted[iid(5)])].payload or {})
    finally:
        shard.close()


def test_leftovers_of_an_interrupted_build_are_removed_on_open(tmp_path: Path) -> None:
    edge = EdgeVectorStore(tmp_path, StoreSettings())
    edge.ensure_collection(DIM)
    edge.upsert(points(clustered(20)))
    live = Path(edge.info().extra["path"])
    edge.close()
    paths = edge_shard.ShardPaths(tmp_path, "mmrag_images")
    # A crash while a copy was being built, before it was published.
    unfinished = paths.next_generation()
    edge_shard.copy_tree(live, unfinished)
    (paths.root / "CURRENT.tmp").write_text(unfinished.name)

    again = EdgeVectorStore(tmp_path, StoreSettings())
    try:
        assert again.count() == 20
        assert Path(again.info().extra["path"]) == live
        assert not unfinished.exists()
        assert not (paths.root / "CURRENT.tmp").exists()
    finally:
        again.close()


def test_a_published_build_survives_a_crash_before_cleanup(tmp_path: Path) -> None:
    edge = EdgeVectorStore(tmp_path, StoreSettings())
    edge.ensure_collection(DIM)
    edge.upsert(points(clustered(20)))
    old = Path(edge.info().extra["path"])
    edge.close()
    paths = edge_shard.ShardPaths(tmp_path, "mmrag_images")
    # A crash after CURRENT named the new generation, before the old one was deleted.
    new = paths.next_generation()
    edge_shard.copy_tree(old, new)
    paths.publish(new)

    again = EdgeVectorStore(tmp_path, StoreSettings())
    try:
        assert again.count() == 20
        assert Path(again.info().extra["path"]) == new
        assert not old.exists()
    finally:
        again.close()


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("MMRAG_")]:
        monkeypatch.delenv(name)
    edge = open_store(Settings(data_dir=tmp_path))
    try:
        assert isinstance(edge, EdgeVectorStore)
        edge.ensure_collection(DIM)
        assert (tmp_path / "qdrant" / "mmrag_images" / "CURRENT").is_file()
    finally:
        edge.close()
    server = open_store(
        Settings(
            data_dir=tmp_path, store=StoreSettings(backend=StoreBackend.QDRANT, url=":memory:")
        )
    )
    assert isinstance(server, QdrantServerStore)
    server.close()


def test_unreachable_server_is_unavailable() -> None:
    server = QdrantServerStore(StoreSettings(backend=StoreBackend.QDRANT, url="http://127.0.0.1:9"))
    with pytest.raises(Unavailable, match="cannot reach Qdrant"):
        server.ensure_collection(DIM)
    with pytest.raises(Unavailable):
        server.count()
    server.close()


def test_concurrent_searches_and_writes(store: EdgeVectorStore) -> None:
    vectors = clustered(200)
    store.upsert(points(vectors))
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for query in clustered(50, seed=2):
                assert len(store.search(query, "image", 5)) == 5
        except BaseException as error:  # collected for the main thread
            errors.append(error)

    def write() -> None:
        try:
            for n in range(10):
                store.upsert(points(clustered(10, seed=n + 10), start=1000 + 10 * n))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(3)] + [threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert store.count() == 300


def generations(store: EdgeVectorStore) -> list[str]:
    root = Path(store.info().extra["path"]).parent
    return sorted(path.name for path in root.glob("gen-*"))


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_hnsw_settings_reach_the_shard(tmp_path: Path) -> None:
    settings = StoreSettings(hnsw=HnswSettings(m=8, ef_construct=40, payload_m=0))
    edge = EdgeVectorStore(tmp_path, settings)
    edge.ensure_collection(DIM)
    edge.close()
    config = (tmp_path / "mmrag_images" / "gen-000001" / "edge_config.json").read_text()
    assert '"m":8' in config
    assert '"ef_construct":40' in config
    assert '"payload_m":0' in config


def test_int8_quantisation_with_rescoring_keeps_results(tmp_path: Path) -> None:
    settings = StoreSettings(quantization="int8")
    quantised = EdgeVectorStore(tmp_path, settings)
    try:
        quantised.ensure_collection(DIM)
        vectors = clustered(400)
        quantised.upsert(points(vectors))
        assert quantised.optimize() is True  # the build makes the int8 copies
        queries = clustered(5, seed=9)
        found = [[h.image_id for h in quantised.search(q, "image", 10)] for q in queries]
        exact = [exact_top(vectors, q, 10) for q in queries]
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
        assert recall >= 0.95
        top = quantised.search(queries[0], "image", 1)[0]
        # Rescored: the score is the full-precision cosine, not the int8 estimate.
        assert top.score == pytest.approx(
            float(vectors[int(top.image_id, 16)] @ queries[0]), abs=1e-5
        )
    finally:
        quantised.close()


@pytest.mark.parametrize("quantized_in_ram", [True, False])
def test_on_disk_vectors_with_int8_reopen_built_and_keep_results(
    tmp_path: Path, quantized_in_ram: bool
) -> None:
    settings = StoreSettings(
        quantization="int8", on_disk_vectors=True, quantized_in_ram=quantized_in_ram
    )
    vectors = clustered(400)
    queries = clustered(5, seed=9)
    exact = [exact_top(vectors, q, 10) for q in queries]
    first = EdgeVectorStore(tmp_path, settings)
    try:
        first.ensure_collection(DIM)
        first.upsert(points(vectors))
        assert first.optimize() is True
        live = first.info().extra["path"]
    finally:
        first.close()
    config = json.loads((Path(live) / "edge_config.json").read_text())
    # The full vectors stay in their files; the int8 copies are held in RAM or read from theirs.
    assert {name: params["memory"] for name, params in config["vectors"].items()} == {
        "image": "cold",
        "text": "cold",
        "region": "cold",
    }
    for name in ("image", "text"):
        int8 = config["vectors"][name]["quantization_config"]["scalar"]
        assert int8["memory"] == ("pinned" if quantized_in_ram else "cold")
        assert "always_ram" not in int8  # deprecated by the engine

    again = EdgeVectorStore(tmp_path, settings)
    try:
        again.ensure_collection(DIM)
        # Reopened as built: same generation, every vector still in the graph, no backlog.
        assert again.info().extra["path"] == live
        assert again.info().indexed_vectors == 800
        assert again.index_backlog().unindexed_points == 0
        found = [[h.image_id for h in again.search(q, "image", 10)] for q in queries]
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
        assert recall >= 0.95
        top = again.search(queries[0], "image", 1)[0]
        assert top.score == pytest.approx(
            float(vectors[int(top.image_id, 16)] @ queries[0]), abs=1e-5
        )
        assert again.optimize() is False  # nothing left to build
        assert again.info().extra["path"] == live
    finally:
        again.close()


def test_a_reopen_reloads_the_shard_only_when_its_settings_changed(tmp_path: Path) -> None:
    settings = StoreSettings(quantization="int8", on_disk_vectors=True)
    EdgeVectorStore(tmp_path, settings).close()  # nothing persisted before the dimension
    edge = EdgeVectorStore(tmp_path, settings)
    edge.ensure_collection(DIM)
    live = Path(edge.info().extra["path"])
    edge.close()
    assert edge_shard.config_matches(live, edge_shard.shard_config(DIM, settings))
    changed = StoreSettings(quantization="int8", hnsw=HnswSettings(m=12))
    assert not edge_shard.config_matches(live, edge_shard.shard_config(DIM, changed))

    again = EdgeVectorStore(tmp_path, changed)
    try:
        again.ensure_collection(DIM)  # reloaded with the new settings, which persist
    finally:
        again.close()
    assert edge_shard.config_matches(live, edge_shard.shard_config(DIM, changed))
    assert '"m":12' in (live / "edge_config.json").read_text()


def test_int8_copies_move_out_of_ram_on_a_reopen_and_keep_results(tmp_path: Path) -> None:
    in_ram = StoreSettings(quantization="int8", on_disk_vectors=True)
    vectors = clustered(400)
    queries = clustered(5, seed=9)
    first = EdgeVectorStore(tmp_path, in_ram)
    try:
        first.ensure_collection(DIM)
        first.upsert(points(vectors))
        assert first.optimize() is True
        before = [[h.image_id for h in first.search(q, "image", 10)] for q in queries]
        live = Path(first.info().extra["path"])
    finally:
        first.close()
    on_disk = in_ram.model_copy(update={"quantized_in_ram": False})
    again = EdgeVectorStore(tmp_path, on_disk)
    try:
        again.ensure_collection(DIM)  # the changed setting reloads the shard and persists
        assert again.info().indexed_vectors == 800  # the graphs were kept, not rebuilt
        after = [[h.image_id for h in again.search(q, "image", 10)] for q in queries]
    finally:
        again.close()
    assert edge_shard.config_matches(live, edge_shard.shard_config(DIM, on_disk))
    assert after == before


def test_only_the_filter_graph_fields_get_per_value_graphs(tmp_path: Path) -> None:
    # A graph per value of every indexed field made the build several times dearer.
    store = EdgeVectorStore(tmp_path, StoreSettings())
    store.ensure_collection(DIM)
    store.close()
    live = edge_shard.ShardPaths(tmp_path, StoreSettings().collection).live()
    assert live is not None
    shard = edge_shard.load(live)
    try:
        schema = shard.info().payload_schema
    finally:
        shard.close()
    assert set(schema) == set(INDEXED_FIELDS)
    # Each kind of index has its own params class; each has enable_hnsw.
    graphs = {field for field, info in schema.items() if getattr(info.params, "enable_hnsw", 0)}
    assert graphs == FILTER_GRAPH_FIELDS
    tenant, labels = schema[TENANT_FIELD].params, schema["labels"].params
    assert isinstance(tenant, qe.KeywordIndexParams)
    assert tenant.is_tenant
    assert isinstance(labels, qe.KeywordIndexParams)
    assert not labels.is_tenant


def test_an_index_made_with_graphs_on_every_field_is_remade_on_open(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, StoreSettings())
    store.ensure_collection(DIM)
    store.upsert(points(clustered(30)))
    store.close()
    live = edge_shard.ShardPaths(tmp_path, StoreSettings().collection).live()
    assert live is not None
    shard = edge_shard.load(live)  # as a store made before FILTER_GRAPH_FIELDS left it
    shard.update(qe.UpdateOperation.delete_field_index("width"))
    shard.update(qe.UpdateOperation.create_field_index("width", qe.PayloadSchemaType.Integer))
    shard.flush()
    shard.close()

    again = EdgeVectorStore(tmp_path, StoreSettings())
    try:
        again.ensure_collection(DIM)
        assert again.count() == 30
    finally:
        again.close()
    shard = edge_shard.load(live)
    try:
        width = shard.info().payload_schema["width"].params
    finally:
        shard.close()
    assert isinstance(width, qe.IntegerIndexParams)
    assert width.enable_hnsw is False
