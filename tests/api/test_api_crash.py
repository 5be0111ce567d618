"""``mmrag serve`` SIGKILLed mid-upload (50 files in one request): after a restart every listed
image has its original and thumbnail, and ``mmrag fsck --repair`` leaves no blob without an
index entry (nor the reverse)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from jobs.api_process import ApiProcess
from PIL import Image

from mmrag.testing.celery_worker import settings_env

FILES = 50


def noise_png(seed: int) -> bytes:
    import io

    pixels = np.random.default_rng(seed).integers(0, 255, (384, 384, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fsck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mmrag.cli", "fsck", *args]
    return subprocess.run(
        command, env=settings_env(env), capture_output=True, text=True, timeout=120, check=False
    )


def test_sigkill_mid_upload_leaves_whole_images_and_fsck_repairs(
    tmp_path: Path, tiny_clip_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {
        "MMRAG_DATA_DIR": str(data_dir),
        "MMRAG_MODELS__EMBEDDER": f"local:{tiny_clip_dir}",
        "MMRAG_MODELS__DEVICE": "cpu",
        "MMRAG_SAMPLES__ENABLED": "false",
    }
    files = [("files", (f"{i}.png", noise_png(i), "image/png")) for i in range(FILES)]
    api = ApiProcess(env, tmp_path / "api.log")
    api.start()
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(httpx.post(f"{api.url}/v1/images", files=files, timeout=120))
        except httpx.HTTPError as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    try:
        sender.start()
        originals = data_dir / "blobs" / "original"
        deadline = time.monotonic() + 60
        while not (originals.exists() and any(originals.rglob("*"))):
            assert time.monotonic() < deadline, "no blob was written"
            time.sleep(0.005)
        api.kill()
        sender.join(30)
        assert outcome
        assert isinstance(outcome[0], httpx.HTTPError), "the upload finished before the kill"

        api.start()
        with httpx.Client(base_url=api.url, timeout=30) as client:
            listed = client.get("/v1/images", params={"limit": 200}).json()["items"]
            for image in listed:
                assert client.get(f"/v1/images/{image['id']}/content").status_code == 200
                assert client.get(f"/v1/images/{image['id']}/thumbnail").status_code == 200
    finally:
        api.stop()
    repaired = fsck(env, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    checked = fsck(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip().endswith("clean")
    kept = int(checked.stdout.split()[0])
    assert kept == len(listed)
    originals_left = list((data_dir / "blobs" / "original").rglob("*"))
    assert len([path for path in originals_left if path.is_file()]) == kept
