"""Uploaded zip and tar archives as job sources, read safely.

Checked once at submit time, before any work: member names that climb out (``../x.jpg``,
absolute paths), more members than ``max_archive_members`` (100k empty files), a declared
total over ``max_archive_total_bytes`` or a zip member compressed more than
``max_member_ratio`` times (zip bombs). Members are never extracted to disk: each is read
into memory when its item runs, at most ``max_image_bytes`` of it, so a header that lies
about a size cannot make us read more. Members that are not images fail as items.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
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
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as packed, packed.open(name) as member:
            data = member.read(limit + 1)
    else:
        with tarfile.open(path) as tar:
            handle = tar.extractfile(name)
            if handle is None:
                raise UnsupportedMedia(f"{name} is not a file in the archive")
            data = handle.read(limit + 1)
    return data


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
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UnsupportedMedia(f"unreadable tar archive: {error}") from error
    return _no_duplicates(names)


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
