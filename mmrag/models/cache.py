"""Per-process model cache: each spec is built and loaded once.

Workers also bound what stays loaded: a model unused for ``idle_unload_s`` is unloaded by
:meth:`ModelCache.sweep`, and loading a model that takes the total past
``memory_budget_bytes`` unloads the least recently used others first. A model is only ever
unloaded while no :meth:`ModelCache.lease` holds it, so a forward pass never loses its
weights half-way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from mmrag.models.base import InferenceModel

M = TypeVar("M", bound=InferenceModel)
log = logging.getLogger(__name__)


@dataclass
class _Entry:
    model: InferenceModel
    last_used: float
    leases: int = 0


class ModelCache:
    def __init__(
        self,
        idle_unload_s: float = 0.0,
        memory_budget_bytes: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_unload_s = idle_unload_s  # 0: never unload for idleness
        self.memory_budget_bytes = memory_budget_bytes  # 0: no budget
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: str, factory: Callable[[], M], kind: type[M]) -> M:
        """The loaded model under ``key``, built by ``factory`` on first use.

        Without a lease the model may be unloaded later by a sweep or the budget; callers
        that keep it (the API's embedder) pass no budget and no idle limit.
        """
        with self.lease(key, factory, kind) as model:
            return model

    @contextmanager
    def lease(self, key: str, factory: Callable[[], M], kind: type[M]) -> Iterator[M]:
        """The loaded model, protected from unloading until the block ends."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(factory(), self._clock())
                self._entries[key] = entry
            entry.leases += 1
            entry.last_used = self._clock()
        try:
            model = entry.model
            if not isinstance(model, kind):
                raise TypeError(f"model cached under {key!r} is a {type(model).__name__}")
            if not model.loaded:
                model.load()
                self._enforce_budget(keep=key)
            yield model
        finally:
            with self._lock:
                entry.leases -= 1
                entry.last_used = self._clock()

    def loaded_keys(self) -> list[str]:
        with self._lock:
            return [key for key, entry in self._entries.items() if entry.model.loaded]

    def sweep(self) -> list[str]:
        """Unload the models idle for longer than ``idle_unload_s``; their keys."""
        if self.idle_unload_s <= 0:
            return []
        now = self._clock()
        # Unloading under the lock: released between the check and the unload, a lease
        # could take the model (still loaded, so it skips load()) and lose its weights
        # half-way through a forward pass.
        with self._lock:
            idle = [
                (key, entry)
                for key, entry in self._entries.items()
                if entry.leases == 0
                and entry.model.loaded
                and now - entry.last_used >= self.idle_unload_s
            ]
            for key, entry in idle:
                log.info("unloading %s: idle for %.0f s", key, now - entry.last_used)
                entry.model.unload()
        return [key for key, _ in idle]

    def _enforce_budget(self, keep: str) -> None:
        if self.memory_budget_bytes <= 0:
            return
        # Under the lock for the same reason as in sweep(): no lease may start on a victim.
        with self._lock:
            loaded = [(key, entry) for key, entry in self._entries.items() if entry.model.loaded]
            total = sum(entry.model.memory_bytes() for _, entry in loaded)
            victims = sorted(
                (item for item in loaded if item[0] != keep and item[1].leases == 0),
                key=lambda item: item[1].last_used,
            )
            for key, entry in victims:
                if total <= self.memory_budget_bytes:
                    break
                size = entry.model.memory_bytes()
                log.info("unloading %s (%d MB) to stay within the memory budget", key, size >> 20)
                entry.model.unload()
                total -= size
        if total > self.memory_budget_bytes:
            log.warning(
                "models in use take %d MB, over the %d MB budget",
                total >> 20,
                self.memory_budget_bytes >> 20,
            )

    def unload_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.model.unload()
