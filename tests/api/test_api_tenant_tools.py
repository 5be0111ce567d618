"""What one tenant's tools write back (a caption, boxes, labels) stays on its own point: the
other tenant holding the same bytes sees none of it, in the image or in caption search."""

from __future__ import annotations

import httpx
from api.live_server import LiveServer
from workers.shapes_scenes import held_out, png_of
from workers.worker_settings import with_models

from mmrag.config import Settings
from mmrag.tenancy.keys import KeyStore, parse_scopes


def test_write_back_stays_with_the_tenant(
    settings: Settings, tiny_vlm_spec: str, tiny_grounding_spec: str
) -> None:
    keys = KeyStore.in_data_dir(settings.data_dir)
    secrets = {
        tenant: keys.create(tenant, parse_scopes("read,write"), tenant)[1]
        for tenant in ("acme", "globex")
    }
    keys.close()
    scene = held_out(1)[0]
    data = png_of(scene)
    with LiveServer(with_models(settings, tiny_vlm_spec, tiny_grounding_spec)) as server:
        clients = {
            tenant: httpx.Client(
                base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {secret}"}
            )
            for tenant, secret in secrets.items()
        }
        acme, globex = clients["acme"], clients["globex"]
        try:
            captioned = acme.post("/v1/caption", files=[("file", ("s.png", data, "image/png"))])
            assert captioned.status_code == 200, captioned.text
            image_id = captioned.json()["image_id"]
            detected = acme.post("/v1/detect", json={"image_id": image_id, "labels": ["circle"]})
            assert detected.status_code == 200, detected.text
            mine = acme.get(f"/v1/images/{image_id}").json()
            assert mine["caption"] == captioned.json()["caption"]

            stored = globex.post("/v1/images", files=[("files", ("s.png", data, "image/png"))])
            assert stored.status_code == 201, stored.text
            assert stored.json()["items"][0]["duplicate"] is False
            theirs = globex.get(f"/v1/images/{image_id}").json()
            assert theirs["id"] == image_id
            assert not theirs.get("caption")
            assert not theirs.get("labels")
            assert not theirs.get("boxes")
            caption_hits = globex.post(
                "/v1/search", json={"text": mine["caption"] or "x", "target": "caption"}
            ).json()["results"]
            assert caption_hits == []  # globex's point has no caption vector at all
        finally:
            for client in clients.values():
                client.close()
