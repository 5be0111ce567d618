"""Content-addressed storage of originals and thumbnails, keyed by the original's SHA-256.

The same bytes always land under the same key, so ``put`` is idempotent and a blob, once
written, never changes. A thumbnail is filed under the SHA-256 of the original it shows.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from mmrag.config import Settings
from mmrag.errors import InsufficientStorage, InvalidInput, NotFound

BlobKind = Literal["original", "thumbnail"]
BLOB_KINDS: tuple[BlobKind, ...] = ("original", "thumbnail")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class BlobStore(Protocol):
    """What the service needs from a blob store. Every method is thread-safe."""

    def put(self, kind: BlobKind, sha256: str, data: bytes) -> bool:
        """Store ``data`` under ``sha256``; True when written now, False when already there."""
        ...

    def open(self, kind: BlobKind, sha256: str) -> BinaryIO:
        """A binary file to read; raises NotFound."""
        ...

    def read(self, kind: BlobKind, sha256: str) -> bytes: ...

    def exists(self, kind: BlobKind, sha256: str) -> bool: ...

    def delete(self, sha256: str, kinds: tuple[BlobKind, ...] = BLOB_KINDS) -> None:
        """Remove the blobs of ``sha256`` (missing ones are fine)."""
        ...


class FilesystemBlobStore:
    """Blobs as files: ``<root>/<kind>/<first 2 hex>/<sha256>``.

    Writes go to a temporary file in the target directory, then ``os.replace`` it into
    place, so a reader sees a whole blob or none and a crash leaves no half-written file
    under a real name.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        # fsync before the rename: after a power cut a blob is whole or absent, never empty.
        self.durable = durable

    @classmethod
    def from_settings(cls, settings: Settings) -> FilesystemBlobStore:
        return cls(settings.blobs_dir)

    def path(self, kind: BlobKind, sha256: str) -> Path:
        """Where the blob lives (for serving it as a file); raises NotFound if absent."""
        target = self._target(kind, sha256)
        if not target.is_file():
            raise NotFound(f"no {kind} stored for {sha256}")
        return target

    def put(self, kind: BlobKind, sha256: str, data: bytes) -> bool:
        try:
            return self._put(kind, sha256, data)
        except OSError as error:
            if error.errno in _FULL:
                raise InsufficientStorage(f"no space left to store the {kind}") from error
            raise

    def _put(self, kind: BlobKind, sha256: str, data: bytes) -> bool:
        target = self._target(kind, sha256)
        if kind == "original" and hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidInput("original bytes do not match their SHA-256 key")
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                if self.durable:
                    out.flush()
                    os.fsync(out.fileno())
            # Two writers of the same key write the same bytes: whichever rename wins is right.
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return True

    def open(self, kind: BlobKind, sha256: str) -> BinaryIO:
        target = self._target(kind, sha256)
        try:
            return target.open("rb")
        except FileNotFoundError as error:
            raise NotFound(f"no {kind} stored for {sha256}") from error

    def read(self, kind: BlobKind, sha256: str) -> bytes:
        with self.open(kind, sha256) as blob:
            return blob.read()

    def exists(self, kind: BlobKind, sha256: str) -> bool:
        return self._target(kind, sha256).is_file()

    def delete(self, sha256: str, kinds: tuple[BlobKind, ...] = BLOB_KINDS) -> None:
        for kind in kinds:
            with contextlib.suppress(FileNotFoundError):
                self._target(kind, sha256).unlink()

    def keys(self, kind: BlobKind) -> Iterator[str]:
        """Every stored key of ``kind`` (mmrag fsck)."""
        folder = self.root / kind
        if folder.is_dir():
            for path in sorted(folder.glob("??/*")):
                if _SHA256.fullmatch(path.name):
                    yield path.name

    def leftovers(self) -> list[Path]:
        """Temporary files a crash left behind mid-write (never under a real name)."""
        return sorted(self.root.glob("*/??/.tmp-*"))

    def _target(self, kind: BlobKind, sha256: str) -> Path:
        # Keys can come from a request: only 64 lowercase hex digits ever become a path.
        if not _SHA256.fullmatch(sha256):
            raise InvalidInput("a blob key is 64 lowercase hex digits (a SHA-256)")
        if kind not in BLOB_KINDS:
            raise InvalidInput(f"unknown blob kind {kind!r}")
        return self.root / kind / sha256[:2] / sha256
