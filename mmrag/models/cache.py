"""Per-process model cache: each spec is built and loaded once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from mmrag.models.base import InferenceModel

M = TypeVar("M", bound=InferenceModel)


class ModelCache:
    def __init__(self) -> None:
        self._models: dict[str, InferenceModel] = {}
        self._lock = threading.Lock()

    def get(self, key: str, factory: Callable[[], M], kind: type[M]) -> M:
        """The loaded model under ``key``, built by ``factory`` on first use."""
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = factory()
                self._models[key] = model
        if not isinstance(model, kind):
            raise TypeError(f"model cached under {key!r} is a {type(model).__name__}")
        model.load()
        return model

    def unload_all(self) -> None:
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for model in models:
            model.unload()
