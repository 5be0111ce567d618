"""A model swap without downtime: the collection re-embedded with another embedder (another
dimension) into a new version while 8 clients search, resumable after an interruption, then
one switch; searches answer from the old model until it, from the new one after, and none
fails."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from mmrag.config import Settings, StoreBackend, StoreSettings
from mmrag.errors import InvalidInput
from mmrag.models.clip.tiny import TINY_CLIP_CONFIG, write_open_clip_dir
from mmrag.retrieval.aliases import read_aliases, version_name
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.reindex import ReindexCancelled
from mmrag.retrieval.search import SearchQuery
from mmrag.services import Services

IMAGES = 24
QUERY = SearchQuery(text="a red square", limit=5)


def _png(index: int) -> bytes:
    buffer = io.BytesIO()
    colour = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
    Image.new("RGB", (32 + index, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def new_spec(tmp_path: Path) -> str:
    narrow = {**TINY_CLIP_CONFIG, "embed_dim": 16}
    return f"local:{write_open_clip_dir(tmp_path / 'narrow-clip', narrow, seed=3)}"


@pytest.fixture(params=["edge", "qdrant"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Both store backends: the edge engine, and qdrant-client's local mode for a server."""
    if request.param == "edge":
        return settings
    store = StoreSettings(backend=StoreBackend.QDRANT, url=":memory:")
    return settings.model_copy(update={"store": store})


@pytest.fixture
def services(settings: Settings) -> Services:
    opened = Services.open(settings)
    items = [
        IngestItem.upload(_png(i), f"{i}.png", (f"picture number {i}",), {}) for i in range(IMAGES)
    ]
    assert len(opened.ingest(items).indexed) == IMAGES
    return opened


def _ids(services: Services) -> list[str]:
    return [hit.image_id for hit in services.search.search(QUERY).hits]


def test_swap_while_clients_search(services: Services, settings: Settings, new_spec: str) -> None:
    old_answer = _ids(services)
    stop = threading.Event()
    seen: list[tuple[float, float, list[str]]] = []
    failures: list[BaseException] = []

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                ids = _ids(services)
            except BaseException as error:
                failures.append(error)
                return
            seen.append((started, time.monotonic(), ids))

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    try:
        began = time.monotonic()
        counts = services.reindex(new_spec, grace_s=0.5)
        switched = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    new_answer = _ids(services)
    assert failures == []
    assert counts.copied == IMAGES
    assert new_answer != old_answer  # the test can tell the models apart
    assert all(ids in (old_answer, new_answer) for _, _, ids in seen)
    assert all(ids == old_answer for _, ended, ids in seen if ended < began)
    after = [ids for started, _, ids in seen if started > switched]
    assert after
    assert all(ids == new_answer for ids in after)
    # The alias points at the new version; the old one is dropped after the grace period.
    alias = read_aliases(settings.data_dir)[settings.store.collection]
    assert alias.collection == version_name(settings.store.collection, new_spec)
    assert (alias.embedder, alias.dim) == (new_spec, 16)
    deadline = time.monotonic() + 20
    while read_aliases(settings.data_dir)[settings.store.collection].retired:
        assert time.monotonic() < deadline, "the old version was never dropped"
        time.sleep(0.1)
    if settings.store.backend is StoreBackend.EDGE:
        assert not (settings.store_dir / settings.store.collection).exists()
    services.close()
    if settings.store.backend is not StoreBackend.EDGE:
        return  # qdrant-client's local mode keeps nothing across a restart
    # A restart with the new embedder opens the new version.
    models = settings.models.model_copy(update={"embedder": new_spec})
    restarted = Services.open(settings.model_copy(update={"models": models}))
    try:
        assert restarted.store.count() == IMAGES
        assert _ids(restarted) == new_answer
    finally:
        restarted.close()


def test_an_interrupted_reindex_resumes(
    services: Services, settings: Settings, new_spec: str
) -> None:
    if settings.store.backend is not StoreBackend.EDGE:
        pytest.skip("qdrant-client's local mode drops a closed collection: nothing to resume")
    old_answer = _ids(services)
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 8:
            cancel.set()  # as if killed after the first batches

    with pytest.raises(ReindexCancelled, match="run it again to resume"):
        services.reindex(new_spec, cancel, progress)
    assert _ids(services) == old_answer  # still the old version
    counts = services.reindex(new_spec, grace_s=0.1)
    assert counts.skipped >= 8
    assert counts.skipped + counts.copied == IMAGES
    assert _ids(services) != old_answer
    services.close()


def test_a_second_reindex_at_once_is_refused(services: Services, new_spec: str) -> None:
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress(done: int, total: int) -> None:
        started.set()
        release.wait(10)

    def first() -> None:
        try:
            services.reindex(new_spec, progress=progress, grace_s=0.1)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(30)
    with pytest.raises(InvalidInput, match="a re-index is already running"):
        services.reindex(new_spec)
    release.set()
    thread.join()
    assert errors == []
    with pytest.raises(InvalidInput, match="already embedded by"):
        services.reindex(new_spec)
    services.close()


def test_a_changed_embedder_is_swapped_in_the_background(
    services: Services, settings: Settings, new_spec: str
) -> None:
    if settings.store.backend is not StoreBackend.EDGE:
        pytest.skip("qdrant-client's local mode keeps nothing across the restart this needs")
    old_answer = _ids(services)
    services.close()
    models = settings.models.model_copy(update={"embedder": new_spec})
    changed = Services.open(settings.model_copy(update={"models": models}))
    try:
        assert changed.swap_embedder_in_background()
        meanwhile = [_ids(changed) for _ in range(5)]  # searches answer during the swap
        changed.swap.wait(60)
        new_answer = _ids(changed)
        assert new_answer != old_answer
        assert all(ids in (old_answer, new_answer) for ids in meanwhile)
        [hit] = changed.search.search(SearchQuery(text="x", limit=1)).hits
        assert hit.payload["embedder_spec"] == new_spec
        assert read_aliases(settings.data_dir)[settings.store.collection].embedder == new_spec
        assert not changed.swap_embedder_in_background()  # nothing left to swap
    finally:
        changed.close()


def test_writes_during_the_reindex_are_kept(services: Services, new_spec: str) -> None:
    ids = sorted(services.store.existing([hit.image_id for hit in services.store.scroll()]))
    labelled, deleted = ids[0], ids[1]
    added: list[str] = []

    def progress(done: int, total: int) -> None:
        if added:
            return
        # Mid-copy: a label on a point copied already, a delete, and a new image.
        services.store.set_payload(labelled, {"labels": ["relabelled"]})
        services.delete_image(deleted)
        report = services.ingest([IngestItem.upload(_png(99), "new.png", ("late",), {})])
        added.extend(report.indexed)

    counts = services.reindex(new_spec, progress=progress, grace_s=0.1)
    assert counts.removed == 1
    store = services.store
    assert store.get([labelled])[labelled]["labels"] == ["relabelled"]
    assert store.get([labelled])[labelled]["embedder_spec"] == new_spec
    assert store.existing([deleted]) == set()
    assert store.existing(added) == set(added)
    assert store.count() == IMAGES
    services.close()


def test_regions_are_embedded_again_by_the_new_model(services: Services, new_spec: str) -> None:
    image_id = next(iter(services.store.scroll())).image_id
    boxes = [{"box": [2, 4, 20, 30], "label": "square", "score": 0.9}]
    payload = {**services.store.get([image_id])[image_id], "boxes": boxes}
    assert services.regions.index(image_id, payload).regions == 1
    services.reindex(new_spec, grace_s=0.1)
    assert services.store.count_regions() == 1
    query = services.embedder().embed_texts(["a square"])[0]
    assert query.shape == (16,)  # the new model's
    [hit] = services.store.search_regions(query, limit=1)
    assert hit.image_id == image_id
    assert hit.region is not None
    assert hit.region["label"] == "square"
    services.close()


def test_a_tenants_services_follow_a_swap(services: Services, new_spec: str) -> None:
    before = services.scoped("acme")
    services.reindex(new_spec, grace_s=0.1)
    after = services.scoped("acme")
    assert after is not before  # the copy of before the swap held its settings
    assert after.settings.models.embedder == new_spec
    assert before.serving_embedder_spec == new_spec  # a copy still held asks the root
    assert after.embedder_serving() is services.embedder_serving() is not None
    services.close()
