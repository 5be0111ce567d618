"""Uploaded zip and tar archives as job sources, read safely.

Checked once at submit time, before any work: member names that climb out (``../x.jpg``,
absolute paths), more members than ``max_archive_members`` (100k empty files), a declared
total over ``max_archive_total_bytes`` or a zip member compressed more than
``max_member_ratio`` times (zip bombs). Members are never extracted to disk: each is read
into memory when its item runs, at most ``max_image_bytes`` of it, so a header that lies
about a size cannot make us read more. Members that are not images fail as items.

Reading one member must not cost the whole archive: the directory is read once per process
and a compressed tar is unpacked to a plain one at submit (members then read at offsets).
"""

from __future__ import annotations

import os
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


def _zip_members(path: Path, settings: Settings) -> list[str]:
    jobs = settings.jobs
    try:
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
