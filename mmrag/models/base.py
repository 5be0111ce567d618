"""The shape every model adapter takes.

A cheap constructor, ``load()`` that does the expensive work once, and
``preprocess -> _forward -> postprocess`` so that everything but ``_forward`` runs in tests
without a GPU or real weights.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from mmrag.errors import ModelUnavailable
from mmrag.models.spec import ModelSpec

Tool = Literal["embed", "caption", "vqa", "ground", "detect", "ocr"]
Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device) -> str:
    """``auto`` picks CUDA where a CUDA torch sees a GPU, else CPU.

    Asking for ``cuda`` where there is none raises :class:`ModelUnavailable` at load, rather
    than an obscure torch error at the first forward pass.
    """
    if device == "cpu":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ModelUnavailable("device cuda requested, but this torch sees no CUDA GPU")
    return "cpu"


class InferenceModel(ABC):
    """Base of every adapter. Subclasses declare the tools they serve."""

    tools: ClassVar[frozenset[Tool]] = frozenset()

    def __init__(self, spec: ModelSpec, device: Device = "auto") -> None:
        self.spec = spec
        self.requested_device: Device = device
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load weights once; later calls return at once. Thread-safe."""
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def unload(self) -> None:
        with self._load_lock:
            if self._loaded:
                self._unload()
                self._loaded = False

    def serves(self, tool: Tool) -> bool:
        return tool in self.tools

    def memory_bytes(self) -> int:
        """Bytes of weights and buffers this adapter holds while loaded (its torch modules),
        for the model cache's memory budget."""
        if not self._loaded:
            return 0
        import torch

        modules = [value for value in vars(self).values() if isinstance(value, torch.nn.Module)]
        tensors = [
            tensor for module in modules for tensor in (*module.parameters(), *module.buffers())
        ]
        # A tensor shared by two modules (tied embeddings) counts once.
        unique = {tensor.data_ptr(): tensor for tensor in tensors}
        return sum(tensor.numel() * tensor.element_size() for tensor in unique.values())

    @abstractmethod
    def _load(self) -> None: ...

    def _unload(self) -> None:  # noqa: B027 (an optional hook, not abstract on purpose)
        """Drop references to weights so the memory can be freed."""
