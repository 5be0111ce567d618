"""An exclusive lock on a file, across processes: builds into a shared cache (fixture models,
ONNX exports) take it so that two processes never build the same entry at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Held until the block ends; the lock file stays (removing it would race the next)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
