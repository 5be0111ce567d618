"""The switchable store's guarantees, on two real stores (qdrant-client's local mode)."""

from __future__ import annotations

import threading
from typing import cast

import numpy as np
import pytest

from mmrag.config import LimitSettings, StoreBackend, StoreSettings
from mmrag.errors import Unavailable
from mmrag.models.clip.embedder import ClipEmbedder
from mmrag.retrieval.reindex import caption_texts
from mmrag.retrieval.search import SearchQuery, SearchService
from mmrag.retrieval.sparse import encode_document
from mmrag.retrieval.store import ImagePoint
from mmrag.retrieval.store_qdrant import QdrantServerStore
from mmrag.retrieval.switchable import SwitchableStore

IMAGE = "ab" * 16


def _store(dim: int) -> QdrantServerStore:
    store = QdrantServerStore(StoreSettings(backend=StoreBackend.QDRANT, url=":memory:"))
    store.ensure_collection(dim)
    vector = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    store.upsert([ImagePoint(IMAGE, vector, {"id": IMAGE, "dim": dim})])
    return store


def test_pinned_searches_and_stale_caption_vectors() -> None:
    old, new = _store(8), _store(4)
    switchable = SwitchableStore(old)
    switchable.pin()  # this thread embedded a query with the old model
    switchable.switch(new)
    [hit] = switchable.search(np.ones(8, dtype=np.float32), "image", 1)
    assert hit.payload["dim"] == 8  # its search still goes to the old version
    with pytest.raises(Unavailable, match="embedder changed"):
        switchable.set_text(IMAGE, np.ones(8, dtype=np.float32), encode_document(["x"]))
    switchable.pin()  # embedded again, with the new model
    [hit] = switchable.search(np.ones(4, dtype=np.float32), "image", 1)
    assert hit.payload["dim"] == 4
    switchable.set_text(IMAGE, np.ones(4, dtype=np.float32), encode_document(["x"]))
    # Another thread, pinned to nothing, reads the current version.
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(switchable.get([IMAGE])[IMAGE]["dim"]))
    reader.start()
    reader.join()
    assert seen == [4]
    switchable.retire(old)
    switchable.close()


def test_writes_wait_while_frozen() -> None:
    switchable = SwitchableStore(_store(4))
    wrote = threading.Event()

    def write() -> None:
        switchable.set_payload(IMAGE, {"labels": ["late"]})
        wrote.set()

    with switchable.frozen():
        writer = threading.Thread(target=write)
        writer.start()
        assert not wrote.wait(0.3)
    writer.join(5)
    assert wrote.is_set()
    assert switchable.get([IMAGE])[IMAGE]["labels"] == ["late"]
    switchable.close()


def test_caption_texts_include_the_model_caption() -> None:
    payload = {"captions": ["a red square"], "model_caption": "a square, red"}
    assert caption_texts(payload) == ["a red square", "a square, red"]
    assert caption_texts({"captions": []}) == []


def test_clearing_regions_on_a_stale_thread_is_no_stale_embedding() -> None:
    old, new = _store(8), _store(4)
    switchable = SwitchableStore(old)
    switchable.pin()  # pinned before the swap
    switchable.switch(new)
    # An image without crops: RegionIndexer embeds nothing and writes no vectors.
    switchable.set_regions(IMAGE, np.zeros((0, 0), dtype=np.float32), [])
    with pytest.raises(Unavailable, match="embedder changed"):
        switchable.set_regions(IMAGE, np.ones((1, 8), dtype=np.float32), [{"box": [0, 0, 1, 1]}])
    switchable.retire(old)
    switchable.close()


def test_a_search_by_image_id_reads_the_collection_serving_now() -> None:
    old, new = _store(8), _store(4)
    added = "cd" * 16
    new.upsert([ImagePoint(added, np.full(4, 0.5, dtype=np.float32), {"id": added, "dim": 4})])
    switchable = SwitchableStore(old)
    switchable.pin()  # a reused thread, pinned by its last search before the swap
    switchable.switch(new)
    taken: list[int] = []

    def embedder() -> ClipEmbedder:
        switchable.pin()  # as Services.embedder does
        taken.append(1)
        return cast(ClipEmbedder, object())  # a search by id embeds nothing

    search = SearchService(embedder, switchable, LimitSettings())
    [hit] = search.search(SearchQuery(image_id=added)).hits
    assert hit.image_id == IMAGE
    assert hit.payload["dim"] == 4
    assert taken == [1]
    switchable.retire(old)
    switchable.close()
