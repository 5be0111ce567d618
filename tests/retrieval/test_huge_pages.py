"""Huge pages for what a shard's load allocated: which regions qualify, and a real collapse."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mmrag.retrieval import huge_pages
from mmrag.retrieval.huge_pages import HugePageLoad, Region, mostly_resident, new_large_regions

MIB = 1 << 20

MAPS = """\
55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0002000000 rw-p 00000000 00:00 0
7f0010000000-7f0011000000 r--p 00000000 fd:01 1234                       /data/links.bin
7f0020000000-7f0021000000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
7f0030000000-7f0030800000 ---p 00000000 00:00 0
"""

SMAPS = """\
7f0000000000-7f0002000000 rw-p 00000000 00:00 0
Size:              32768 kB
Rss:               32000 kB
7f0010000000-7f0011000000 r--p 00000000 fd:01 1234                       /data/links.bin
Size:              16384 kB
Rss:               16384 kB
"""


def test_only_private_anonymous_mappings_are_taken_from_maps() -> None:
    # The heap has a name, the file and the shared mapping are not anonymous private memory,
    # and a reserved range (---p) holds nothing.
    assert dict(huge_pages._parse_maps(MAPS)) == {0x7F0000000000: 32 * MIB}


def test_resident_bytes_come_from_smaps() -> None:
    assert list(huge_pages._parse_smaps(SMAPS)) == [
        Region(0x7F0000000000, 32 * MIB, 32000 * 1024),
        Region(0x7F0010000000, 16 * MIB, 16 * MIB),
    ]


def test_only_new_large_and_mostly_resident_regions_are_collapsed() -> None:
    before = {0x1000_0000: 64 * MIB}
    after = before | {0x2000_0000: 16 * MIB, 0x3000_0000: 4 * MIB, 0x4000_0000: 64 * MIB}
    assert new_large_regions(before, after) == {0x2000_0000: 16 * MIB, 0x4000_0000: 64 * MIB}

    resident = Region(0x2000_0000, 16 * MIB, 16 * MIB)
    sparse = Region(0x4000_0000, 64 * MIB, 8 * MIB)  # on huge pages it would grow eightfold
    assert mostly_resident([resident, sparse]) == [resident]


def test_a_failed_load_or_the_setting_off_collapses_nothing() -> None:
    with pytest.raises(RuntimeError), HugePageLoad("a failed load") as failed:
        raise RuntimeError("engine error")
    assert failed.thread is None

    with HugePageLoad("nothing", enabled=False) as off:
        region = _resident_private_region(16 * MIB)
    assert off.thread is None
    region.close()


def _thp_available() -> bool:
    """Huge pages on, and a kernel with MADV_COLLAPSE (Linux 6.1+)."""
    try:
        setting = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    new_enough = release is not None and (int(release[1]), int(release[2])) >= (6, 1)
    return new_enough and "[never]" not in setting


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping that holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        header = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
        if header:
            inside = int(header[1], 16) <= address < int(header[2], 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def _resident_private_region(size: int) -> mmap.mmap:
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.write(b"\x01" * size)  # every page touched: resident, as a loaded copy is
    return region


@pytest.mark.skipif(not _thp_available(), reason="no huge pages or MADV_COLLAPSE here")
def test_what_the_load_allocated_ends_up_on_huge_pages() -> None:
    with HugePageLoad("a test region") as load:
        region = _resident_private_region(16 * MIB)
    view = ctypes.c_char.from_buffer(region)
    address = ctypes.addressof(view)
    del view  # an exported buffer would keep the mmap from closing
    try:
        assert load.thread is not None
        load.thread.join(timeout=60)
        assert load.result is not None
        assert load.result.failed == 0
        # 16 MiB hold at least seven aligned 2 MiB pages whatever the start address.
        assert _anon_huge_kib(address) >= 7 * 2048
        assert region[: 4 * MIB] == b"\x01" * (4 * MIB)  # the contents survive the move
    finally:
        region.close()


def _madvise_refusing(errors: list[int]) -> tuple[list[int], Callable[[int, int, int], int]]:
    """A madvise that fails with each of ``errors`` in turn, then succeeds; and its calls."""
    calls: list[int] = []

    def madvise(start: int, size: int, advice: int) -> int:
        calls.append(advice)
        if errors:
            ctypes.set_errno(errors.pop(0))
            return -1
        return 0

    return calls, madvise


def test_a_busy_page_is_tried_again_and_a_real_refusal_is_not() -> None:
    region = Region(0x2000_0000, 16 * MIB, 16 * MIB)

    calls, busy_once = _madvise_refusing([errno.EAGAIN])
    assert huge_pages._collapse_region(busy_once, region) == 0
    assert calls == [huge_pages.MADV_COLLAPSE] * 2

    calls, refusing = _madvise_refusing([errno.EINVAL, errno.EINVAL])
    assert huge_pages._collapse_region(refusing, region) == errno.EINVAL
    assert calls == [huge_pages.MADV_COLLAPSE]

    calls, always_busy = _madvise_refusing([errno.EAGAIN] * 5)
    assert huge_pages._collapse_region(always_busy, region) == errno.EAGAIN
    assert len(calls) == huge_pages.COLLAPSE_TRIES
