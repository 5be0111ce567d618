"""The C library through ctypes, loaded once: for the calls Python's standard library lacks
(``malloc_trim``, ``madvise`` on memory it did not map)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def libc() -> ctypes.CDLL | None:
    """None where no C library can be loaded; ``use_errno`` so callers can say why a call
    failed (``ctypes.get_errno``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None
