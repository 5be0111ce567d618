"""Tool requests refused before anything is stored (no model is needed to refuse them)."""

from __future__ import annotations

import io

import httpx
from PIL import Image


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_an_upload_with_a_model_not_served_is_refused_and_not_indexed(
    live_api: httpx.Client,
) -> None:
    response = live_api.post(
        "/v1/caption",
        data={"model": "hf:someone/else"},
        files=[("file", ("x.png", png(), "image/png"))],
    )
    assert response.status_code == 400, response.text
    assert "not served here" in response.json()["detail"]
    assert live_api.get("/v1/images").json()["total"] == 0
