"""Give the C heap's free pages back to the kernel after a large release.

glibc keeps memory that was freed in its arenas for reuse, and a closed shard (its int8
copies, graphs and unindexed points: hundreds of MB at a million images) would otherwise stay
in the process's resident memory until the allocator happens to reuse it.
"""

from __future__ import annotations

from mmrag.retrieval.libc import libc


def release_free_heap() -> None:
    """Called where a serving process drops a whole shard (a build's swap); a store's close()
    mostly comes at the process's end, where it would buy nothing."""
    c_library = libc()
    if c_library is not None and hasattr(c_library, "malloc_trim"):  # glibc only (not musl)
        c_library.malloc_trim(0)
