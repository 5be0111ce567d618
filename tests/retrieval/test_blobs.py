"""The content-addressed blob store: idempotent, atomic, and keyed only by SHA-256."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from mmrag.config import Settings
from mmrag.errors import InvalidInput, NotFound
from mmrag.retrieval.blobs import FilesystemBlobStore

DATA = b"\xff\xd8\xff not really a jpeg, the blob store does not care"
KEY = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def blobs(settings: Settings) -> FilesystemBlobStore:
    return FilesystemBlobStore.from_settings(settings)


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_put_then_read_open_path_exists(blobs: FilesystemBlobStore) -> None:
    assert blobs.put("original", KEY, DATA) is True

    assert blobs.read("original", KEY) == DATA
    with blobs.open("original", KEY) as handle:
        assert handle.read() == DATA
    assert blobs.path("original", KEY).read_bytes() == DATA
    assert blobs.exists("original", KEY)
    assert not blobs.exists("thumbnail", KEY)


def test_put_is_idempotent_and_never_rewrites(blobs: FilesystemBlobStore) -> None:
    blobs.put("original", KEY, DATA)
    first = blobs.path("original", KEY).stat()

    assert blobs.put("original", KEY, DATA) is False

    again = blobs.path("original", KEY).stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_thumbnail_lives_under_the_original_key(blobs: FilesystemBlobStore) -> None:
    blobs.put("original", KEY, DATA)
    blobs.put("thumbnail", KEY, b"small")

    assert blobs.read("thumbnail", KEY) == b"small"
    assert files_under(blobs.root) == [f"original/{KEY[:2]}/{KEY}", f"thumbnail/{KEY[:2]}/{KEY}"]


def test_original_must_match_its_key(blobs: FilesystemBlobStore) -> None:
    with pytest.raises(InvalidInput):
        blobs.put("original", KEY, DATA + b"tampered")

    assert not blobs.exists("original", KEY)


@pytest.mark.parametrize("key", ["../../etc/passwd", KEY.upper(), KEY[:32], KEY + "\n", ""])
def test_only_sha256_keys_become_paths(blobs: FilesystemBlobStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        blobs.exists("original", key)
    with pytest.raises(InvalidInput):
        blobs.read("original", key)


def test_missing_blob_is_not_found(blobs: FilesystemBlobStore) -> None:
    with pytest.raises(NotFound):
        blobs.read("original", KEY)
    with pytest.raises(NotFound):
        blobs.path("thumbnail", KEY)


def test_delete_removes_every_kind_and_tolerates_missing(blobs: FilesystemBlobStore) -> None:
    blobs.put("original", KEY, DATA)
    blobs.put("thumbnail", KEY, b"small")

    blobs.delete(KEY)
    blobs.delete(KEY)

    assert not blobs.exists("original", KEY)
    assert not blobs.exists("thumbnail", KEY)


def test_delete_can_remove_one_kind(blobs: FilesystemBlobStore) -> None:
    blobs.put("original", KEY, DATA)
    blobs.put("thumbnail", KEY, b"small")

    blobs.delete(KEY, ("thumbnail",))

    assert blobs.exists("original", KEY)
    assert not blobs.exists("thumbnail", KEY)


def test_failed_write_leaves_no_file(
    blobs: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)

    with pytest.raises(OSError, match="disk full"):
        blobs.put("original", KEY, DATA)

    assert not blobs.exists("original", KEY)
    assert files_under(blobs.root) == []  # no temporary file left behind either


def test_concurrent_puts_of_one_key_leave_one_whole_blob(blobs: FilesystemBlobStore) -> None:
    data = os.urandom(1 << 20)
    key = hashlib.sha256(data).hexdigest()
    written: list[bool] = []
    threads = [
        threading.Thread(target=lambda: written.append(blobs.put("original", key, data)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert blobs.read("original", key) == data
    assert True in written
    assert files_under(blobs.root) == [f"original/{key[:2]}/{key}"]
