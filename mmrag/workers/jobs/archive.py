"""Uploaded zip and tar archives as job sources, read safely.

Checked once at submit time, before any work: member names that climb out (``../x.jpg``,
absolute paths), more members than ``max_archive_members`` (100k empty files: a zip's
count is read from its end record before its directory is), a declared total over
``max_archive_total_bytes``, a zip member compressed more than ``max_member_ratio`` times,
or a compressed tar whose members add up to more than that ratio of its size (bombs).
Members are never extracted to disk: each is read into memory when its item runs, at most
``max_image_bytes`` of it, so a header that lies about a size cannot make us read more.
Members that are not images fail as items.

Reading one member must not cost the whole archive: the directory is read once per process
and a compressed tar is unpacked to a plain one at submit (members then read at offsets).
"""

from __future__ import annotations

import os
import struct
import tarfile
import threading
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path, PurePosixPath

from mmrag.config import Settings
from mmrag.errors import InvalidInput, TooLarge, UnsupportedMedia


def archive_members(path: Path, settings: Settings) -> list[str]:
    """The names of the archive's file members, in archive order, after every check."""
    if zipfile.is_zipfile(path):
        return _zip_members(path, settings)
    if _is_tar(path):
        return _tar_members(path, settings)
    raise UnsupportedMedia("the archive is neither a zip nor a tar file")


def read_member(path: Path, name: str, limit: int) -> bytes:
    """One member's bytes, refused past ``limit``; a damaged member fails as its item."""
    try:
        data = _read(path, name, limit)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, KeyError, OSError, EOFError) as error:
        raise UnsupportedMedia(f"{name}: unreadable archive member ({error})") from error
    if len(data) > limit:
        raise TooLarge(f"{name} is over the limit of {limit} bytes")
    return data


def _read(path: Path, name: str, limit: int) -> bytes:
    index = _index(path)
    if isinstance(index, zipfile.ZipFile):
        with index.open(name) as member:
            return member.read(limit + 1)
    offset, size = index[name]
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.pread(descriptor, min(size, limit + 1), offset)
    finally:
        os.close(descriptor)


_TarIndex = dict[str, tuple[int, int]]  # member name -> (offset of its data, size)
_INDEXES: OrderedDict[tuple[str, int], zipfile.ZipFile | _TarIndex] = OrderedDict()
_INDEXES_KEPT = 4
_indexes_lock = threading.Lock()


def _index(path: Path) -> zipfile.ZipFile | _TarIndex:
    """The archive's directory, read once per process (not once per member: with thousands
    of members that would be quadratic). Zip files stay open (their reads are locked)."""
    key = (str(path), path.stat().st_mtime_ns)
    with _indexes_lock:
        found = _INDEXES.get(key)
        if found is not None:
            _INDEXES.move_to_end(key)
            return found
        index: zipfile.ZipFile | _TarIndex
        if zipfile.is_zipfile(path):
            index = zipfile.ZipFile(path)
        else:
            with tarfile.open(path, "r:") as tar:  # plain tar: submit unpacked any compression
                index = {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
        _INDEXES[key] = index
        while len(_INDEXES) > _INDEXES_KEPT:
            _, dropped = _INDEXES.popitem(last=False)
            if isinstance(dropped, zipfile.ZipFile):
                dropped.close()
        return index


_EOCD = b"PK\x05\x06"  # end of central directory record
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_EOCD_SEARCH = 22 + 65_535  # the record, and the longest comment that may follow it


def _zip_entry_count(path: Path) -> int:
    """How many entries the zip's end record declares, read without its directory (a
    ``ZipFile`` builds an object per entry first: hundreds of MB for a flood)."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        start = max(0, size - _EOCD_SEARCH)
        file.seek(start)
        tail = file.read()
        at = tail.rfind(_EOCD)
        if at < 0 or at + 22 > len(tail):
            raise UnsupportedMedia("unreadable zip archive: no end of central directory")
        (count,) = struct.unpack_from("<H", tail, at + 10)
        if count != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != _ZIP64_LOCATOR:
            return int(count)
        (record_at,) = struct.unpack_from("<Q", tail, at - 20 + 8)
        file.seek(record_at)
        record = file.read(56)
    if len(record) < 56 or record[:4] != _ZIP64_EOCD:
        raise UnsupportedMedia("unreadable zip archive: bad zip64 end record")
    (count64,) = struct.unpack_from("<Q", record, 32)
    return int(count64)


def forget_archive(path: Path) -> None:
    """A finished job's archive: its cached directory closed, the file deleted."""
    with _indexes_lock:
        for key in [key for key in _INDEXES if key[0] == str(path)]:
            dropped = _INDEXES.pop(key)
            if isinstance(dropped, zipfile.ZipFile):
                dropped.close()
    path.unlink(missing_ok=True)


def _zip_members(path: Path, settings: Settings) -> list[str]:
    jobs = settings.jobs
    try:
        _check_count(_zip_entry_count(path), settings)
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsupportedMedia(f"unreadable zip archive: {error}") from error
    _check_count(len(infos), settings)
    names: list[str] = []
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        _check_name(info.filename)
        total += info.file_size
        if total > jobs.max_archive_total_bytes:
            raise TooLarge(f"the archive unpacks to over {jobs.max_archive_total_bytes} bytes")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > jobs.max_member_ratio:
            raise TooLarge(
                f"{info.filename} expands {ratio:.0f} times (limit {jobs.max_member_ratio:g}): "
                "refused as a zip bomb"
            )
        names.append(info.filename)
    return _no_duplicates(names)


def _tar_members(path: Path, settings: Settings) -> list[str]:
    jobs = settings.jobs
    names: list[str] = []
    total = 0
    seen = 0
    # A compressed tar may expand at most this much overall (per member, as zips are, is
    # not knowable before decompressing it).
    expansion = jobs.max_member_ratio * max(path.stat().st_size, 1)
    try:
        compressed = _is_compressed_tar(path)
        with tarfile.open(path) as archive:
            # Walked member by member, so a flood of entries is refused before it is all read.
            for member in archive:
                seen += 1
                _check_count(seen, settings)
                if member.isdir():
                    continue
                _check_name(member.name)
                if not member.isfile():
                    raise InvalidInput(f"{member.name}: links and devices are not accepted")
                total += member.size
                if total > jobs.max_archive_total_bytes:
                    raise TooLarge(
                        f"the archive unpacks to over {jobs.max_archive_total_bytes} bytes"
                    )
                if compressed and total > expansion:
                    raise TooLarge(
                        f"the archive expands over {jobs.max_member_ratio:g} times its size: "
                        "refused as a bomb"
                    )
                names.append(member.name)
        if compressed:
            _unpack_to_plain_tar(path)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UnsupportedMedia(f"unreadable tar archive: {error}") from error
    return _no_duplicates(names)


def _is_compressed_tar(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:"):
            return False
    except tarfile.ReadError:
        return True


def _unpack_to_plain_tar(path: Path) -> None:
    """Rewrite a compressed tar as a plain one, in place: members are then read at their
    offsets (a compressed stream would have to be decompressed from its start per member).
    Runs after the checks, so its size is within ``max_archive_total_bytes``."""
    plain = path.with_name(path.name + ".plain")
    with tarfile.open(path) as source, tarfile.open(plain, "w:") as target:
        for member in source:
            if member.isfile():
                target.addfile(member, source.extractfile(member))
    os.replace(plain, path)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _check_count(count: int, settings: Settings) -> None:
    limit = settings.jobs.max_archive_members
    if count > limit:
        raise TooLarge(f"the archive has over {limit} members")


def _check_name(name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not name.strip():
        raise InvalidInput(f"archive member {name[:200]!r} has an unsafe path")


def _no_duplicates(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise InvalidInput("the archive names a member twice")
    if not names:
        raise InvalidInput("the archive holds no files")
    return names
