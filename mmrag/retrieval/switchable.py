"""A vector store whose backing collection can be replaced while it serves: every component
(search, annotations, tenants, the HNSW scheduler) holds this one object, and a switch makes
all of them use the new collection from their next call on.

A search embeds its query and then queries the store: two calls, between which a switch may
fall. So a thread that takes the embedder pins the collection of that moment
(:meth:`SwitchableStore.pin`), and its dense searches go to that collection, which a switch
keeps open for a grace period (:meth:`SwitchableStore.retire` closes it). A query vector of
the old model is thus never ranked against vectors of the new one."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from mmrag.errors import Unavailable
from mmrag.retrieval.rwlock import ReadWriteLock
from mmrag.retrieval.store import (
    DenseVectorName,
    Filter,
    Hit,
    ImagePoint,
    SparseVector,
    StoreInfo,
    VectorStore,
)


class SwitchableStore:
    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.backend_name = store.backend_name  # a switch never changes the backend
        self._generation = 0
        self._open: dict[int, VectorStore] = {0: store}
        self._lock = threading.Lock()
        self._pins = threading.local()
        # Writes hold it shared; a switch's last step holds it exclusive, so that nothing
        # lands in the old collection between its final catch-up and the switch.
        self._writes = ReadWriteLock()

    @property
    def current(self) -> VectorStore:
        with self._lock:
            return self._store

    def pin(self) -> None:
        """This thread's next searches go to the collection served now (see the module)."""
        with self._lock:
            self._pins.generation = self._generation

    def frozen(self) -> AbstractContextManager[None]:
        """Hold writes off (they wait, then go to whichever collection is current)."""
        return self._writes.exclusive()

    def switch(self, store: VectorStore) -> VectorStore:
        """Serve from ``store`` from now on; returns the store it replaces, left open for the
        searches pinned to it until :meth:`retire`."""
        with self._lock:
            previous, self._store = self._store, store
            self._generation += 1
            self._open[self._generation] = store
        return previous

    def retire(self, store: VectorStore) -> None:
        """Close a store a switch replaced; searches pinned to it go to the current one."""
        with self._lock:
            self._open = {gen: kept for gen, kept in self._open.items() if kept is not store}
        store.close()

    def _pinned(self) -> VectorStore:
        generation = getattr(self._pins, "generation", None)
        with self._lock:
            return (
                self._open.get(generation, self._store) if generation is not None else self._store
            )

    def ensure_collection(self, dim: int) -> None:
        self.current.ensure_collection(dim)

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        with self._writes.shared():
            self.current.upsert(points)

    def set_payload(self, image_id: str, payload: dict[str, Any]) -> None:
        with self._writes.shared():
            self.current.set_payload(image_id, payload)

    def set_text(
        self, image_id: str, text_vector: npt.NDArray[np.float32], sparse: SparseVector
    ) -> None:
        with self._writes.shared():
            with self._lock:
                pinned = getattr(self._pins, "generation", self._generation)
                stale = pinned != self._generation
            if stale:
                # Embedded by the model the switch replaced: retried, it embeds with the new.
                raise Unavailable("the embedder changed while this caption was embedded")
            self.current.set_text(image_id, text_vector, sparse)

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.current.get(image_ids)

    def get_vector(self, image_id: str, name: DenseVectorName) -> npt.NDArray[np.float32] | None:
        return self._pinned().get_vector(image_id, name)

    def existing(self, image_ids: Sequence[str]) -> set[str]:
        return self.current.existing(image_ids)

    def delete(self, image_ids: Sequence[str]) -> None:
        with self._writes.shared():
            self.current.delete(image_ids)

    def search(
        self,
        vector: npt.NDArray[np.float32],
        using: DenseVectorName,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        return self._pinned().search(vector, using, limit, offset, filter)

    def search_sparse(
        self, vector: SparseVector, limit: int, offset: int = 0, filter: Filter | None = None
    ) -> list[Hit]:
        return self._pinned().search_sparse(vector, limit, offset, filter)

    def search_hybrid(
        self,
        dense: npt.NDArray[np.float32],
        using: DenseVectorName,
        sparse: SparseVector,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
        region_weight: float = 0.0,
        region_floor: float | None = None,
    ) -> list[Hit]:
        return self._pinned().search_hybrid(
            dense, using, sparse, limit, offset, filter, region_weight, region_floor
        )

    def set_regions(
        self,
        image_id: str,
        vectors: npt.NDArray[np.float32],
        regions: Sequence[dict[str, Any]],
    ) -> None:
        with self._writes.shared():
            with self._lock:
                stale = getattr(self._pins, "generation", self._generation) != self._generation
            # No vectors (no crops) means nothing was embedded: clearing regions is no model's.
            if stale and len(vectors):
                # Crops embedded by the model the switch replaced: retried, they embed anew.
                raise Unavailable("the embedder changed while these regions were embedded")
            self.current.set_regions(image_id, vectors, regions)

    def search_regions(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        return self._pinned().search_regions(vector, limit, offset, filter)

    def count_regions(self, filter: Filter | None = None) -> int:
        return self.current.count_regions(filter)

    def count(self, filter: Filter | None = None) -> int:
        return self.current.count(filter)

    def scroll(self, filter: Filter | None = None, batch: int = 256) -> Iterator[Hit]:
        return self.current.scroll(filter, batch)

    def optimize(self) -> bool:
        return self.current.optimize()

    def info(self) -> StoreInfo:
        return self.current.info()

    def close(self) -> None:
        with self._lock:
            stores, self._open = list(self._open.values()), {}
        for store in stores:
            store.close()
