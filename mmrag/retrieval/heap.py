"""Give the C heap's free pages back to the kernel after a large release.

glibc keeps memory that was freed in its arenas for reuse, and a closed shard (its int8
copies, graphs and unindexed points: hundreds of MB at a million images) would otherwise stay
in the process's resident memory until the allocator happens to reuse it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl, not macOS)


def release_free_heap() -> None:
    """Called where a serving process drops a whole shard (a build's swap); a store's close()
    mostly comes at the process's end, where it would buy nothing."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
