"""A full disk while ingesting: 507 with Retry-After, nothing half-stored (no original without
its thumbnail, no index entry), and the service takes the same upload once space returns.

The disk fills for blob writes only, at the fsync every blob write makes before its rename:
the original is written, its thumbnail is not (the worst moment)."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mmrag.config import Settings


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def full_for(folder: Path, real: Callable[[int], None]) -> Callable[[int], None]:
    def fsync(fd: int) -> None:
        if str(folder) in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    return fsync


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_disk_full_is_507_and_nothing_half_stored(
    live_api: httpx.Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    thumbnails = settings.blobs_dir / "thumbnail"
    monkeypatch.setattr(os, "fsync", full_for(thumbnails, os.fsync))
    upload = [("files", ("a.png", png_bytes(), "image/png"))]
    refused = live_api.post("/v1/images", files=upload)
    assert refused.status_code == 507, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) > 0
    assert live_api.get("/v1/images").json()["total"] == 0
    assert files_under(settings.blobs_dir) == []  # the original went with the thumbnail
    monkeypatch.undo()  # space returns
    stored = live_api.post("/v1/images", files=upload)
    assert stored.status_code == 201, stored.text
    image_id = stored.json()["items"][0]["id"]
    assert live_api.get(f"/v1/images/{image_id}/thumbnail").status_code == 200
