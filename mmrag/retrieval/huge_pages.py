"""Put a freshly loaded shard's in-heap int8 copies on 2 MiB pages (Linux).

A search at ef 512 scores thousands of int8 vectors scattered over hundreds of MB (the graph
links are mapped from their files and stay on the page cache's pages). On 4 KiB pages nearly
every read misses the TLB, and in a virtual machine each miss walks two page tables; a 2 MiB
page covers 512 times as much. Where the kernel gives huge pages only on request
(``transparent_hugepage/enabled`` = madvise, the usual default), the regions a shard's load
created are advised (``MADV_HUGEPAGE``) and collapsed at once (``MADV_COLLAPSE``, Linux 6.1+)
on a background thread: searches go on meanwhile, on the small pages. Elsewhere (another OS,
an older kernel, huge pages off) nothing happens.

Only regions that are new since the snapshot taken before the load, 8 MiB or more, and almost
wholly resident are collapsed: a sparsely touched region on huge pages would grow the process.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mmrag.retrieval.libc import libc

log = logging.getLogger(__name__)

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
MIN_REGION_BYTES = 8 << 20
MIN_RESIDENT_FRACTION = 0.9
# The kernel answers EAGAIN when a page was busy at that instant (locked, being migrated):
# measured here, one collapse of a 16 MiB region in 300-600; the next try succeeds.
COLLAPSE_TRIES = 3
_MAPS = Path("/proc/self/maps")
_SMAPS = Path("/proc/self/smaps")


@dataclass(frozen=True)
class Region:
    start: int
    size: int
    resident: int


@dataclass(frozen=True)
class Collapsed:
    regions: int
    bytes: int
    failed: int
    seconds: float


@cache
def _madvise() -> Callable[[int, int, int], int] | None:
    function = getattr(libc(), "madvise", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    madvise: Callable[[int, int, int], int] = function
    return madvise


def anonymous_regions() -> dict[int, int]:
    """The process's private anonymous mappings, size by start address (empty off Linux).

    From ``/proc/self/maps``, which is cheap: ``smaps`` would walk every page table to count
    resident pages (60 ms for a server's few hundred mappings), and this is read while a
    swap holds the writes back."""
    try:
        text = _MAPS.read_text()
    except OSError:
        return {}
    return dict(_parse_maps(text))


def _parse_maps(text: str) -> Iterator[tuple[int, int]]:
    for line in text.splitlines():
        fields = line.split()
        # Anonymous: no path, and written privately (malloc's mmap chunks; the heap is named).
        if len(fields) == 5 and fields[1] == "rw-p":
            yield _span(fields[0])


def _span(addresses: str) -> tuple[int, int]:
    """``"7f00-7f80"`` (hex, as /proc writes a mapping's range) as (start, size)."""
    start, end = (int(part, 16) for part in addresses.split("-"))
    return start, end - start


def new_large_regions(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {
        start: size
        for start, size in after.items()
        if start not in before and size >= MIN_REGION_BYTES
    }


def resident(regions: dict[int, int]) -> list[Region]:
    """``regions`` with their resident bytes, from ``/proc/self/smaps``."""
    try:
        text = _SMAPS.read_text()
    except OSError:
        return []
    return [region for region in _parse_smaps(text) if regions.get(region.start) == region.size]


def _parse_smaps(text: str) -> Iterator[Region]:
    header: tuple[int, int] | None = None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            header = _span(fields[0])
        elif fields[0] == "Rss:" and header is not None:
            yield Region(header[0], header[1], int(fields[1]) * 1024)
            header = None


def mostly_resident(regions: list[Region]) -> list[Region]:
    return [region for region in regions if region.resident >= MIN_RESIDENT_FRACTION * region.size]


def collapse(regions: list[Region]) -> Collapsed:
    """Advise and collapse each region; one that the kernel refuses is counted, not raised."""
    madvise = _madvise()
    if madvise is None:
        return Collapsed(0, 0, len(regions), 0.0)
    started = time.monotonic()
    done = failed = 0
    for region in regions:
        madvise(region.start, region.size, MADV_HUGEPAGE)
        error = _collapse_region(madvise, region)
        if error == 0:
            done += region.size
        else:
            failed += 1
            reason = os.strerror(error)
            log.debug("huge pages: %#x (+%d) refused: %s", region.start, region.size, reason)
    return Collapsed(len(regions) - failed, done, failed, round(time.monotonic() - started, 2))


def _collapse_region(madvise: Callable[[int, int, int], int], region: Region) -> int:
    """0 when collapsed, else the errno of the last try."""
    error = 0
    for _ in range(COLLAPSE_TRIES):
        if madvise(region.start, region.size, MADV_COLLAPSE) == 0:
            return 0
        error = ctypes.get_errno()
        if error != errno.EAGAIN:
            break
    return error


class HugePageLoad:
    """``with HugePageLoad(what): load()``: collapses what the load allocated, afterwards."""

    def __init__(self, what: str, *, enabled: bool = True) -> None:
        self._what = what
        self._enabled = enabled
        self._before: dict[int, int] = {}
        self.thread: threading.Thread | None = None
        self.result: Collapsed | None = None

    def __enter__(self) -> HugePageLoad:
        if self._enabled:
            self._before = anonymous_regions()
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if not self._enabled or error_type is not None or not self._before:
            return
        regions = new_large_regions(self._before, anonymous_regions())
        if regions:
            self.thread = threading.Thread(
                target=self._collapse, args=(regions,), name="mmrag-huge-pages", daemon=True
            )
            self.thread.start()

    def _collapse(self, regions: dict[int, int]) -> None:
        candidates = mostly_resident(resident(regions))
        if not candidates:
            return
        self.result = result = collapse(candidates)
        log.info(
            "huge pages: %d MiB of %s in %d regions collapsed in %.2f s (%d refused)",
            result.bytes >> 20,
            self._what,
            result.regions,
            result.seconds,
            result.failed,
        )
