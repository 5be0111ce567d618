"""Two tenants over real HTTP, on the embedded engine and through qdrant-client: each sees
only its own images, jobs and answers; the same bytes tell neither about the other; keys are
checked on every request (revoked, read-only, malformed, in the query string, of a deleted
tenant); writes and refusals are audited without the secret."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from api.live_server import LiveServer
from PIL import Image

from mmrag.config import Settings
from mmrag.errors import InvalidInput
from mmrag.tenancy.keys import KeyStore, parse_scopes


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


RED, GREEN, BLUE = png_bytes((230, 20, 20)), png_bytes((20, 230, 20)), png_bytes((20, 20, 230))


@dataclass
class World:
    url: str
    data_dir: Path
    secrets: dict[str, str]
    key_ids: dict[str, str]

    def client(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)


KEYS = {
    "acme": ("acme", "read,write,jobs"),
    "acme_reader": ("acme", "read"),
    "globex": ("globex", "read,write"),
    "doomed": ("initech", "read"),
    "ops": ("ops", "admin"),
}


@contextmanager
def started(
    root: Path, tiny_clip_dir: Path, backend: str, tenancy: dict[str, object] | None = None
) -> Iterator[World]:
    store = {"backend": backend, "url": ":memory:" if backend == "qdrant" else None}
    settings = Settings(
        data_dir=root / "data",
        models={"embedder": f"local:{tiny_clip_dir}", "device": "cpu"},
        samples={"enabled": False},
        store=store,
        tenancy=tenancy or {},
    )
    keys = KeyStore.in_data_dir(settings.data_dir)
    secrets, ids = {}, {}
    for name, (tenant, scopes) in KEYS.items():
        record, secrets[name] = keys.create(tenant, parse_scopes(scopes), name)
        ids[name] = record.id
    keys.close()
    with LiveServer(settings) as server:
        yield World(server.url, settings.data_dir, secrets, ids)


@pytest.fixture(params=["edge", "qdrant"])
def world(request: pytest.FixtureRequest, tmp_path: Path, tiny_clip_dir: Path) -> Iterator[World]:
    with started(tmp_path, tiny_clip_dir, request.param) as running:
        yield running


def upload(client: httpx.Client, data: bytes, name: str = "a.png") -> dict[str, object]:
    response = client.post("/v1/images", files=[("files", (name, data, "image/png"))])
    assert response.status_code == 201, response.text
    item: dict[str, object] = response.json()["items"][0]
    return item


def listed(client: httpx.Client) -> set[str]:
    return {item["id"] for item in client.get("/v1/images").json()["items"]}


def searched(client: httpx.Client, **body: object) -> set[str]:
    response = client.post("/v1/search", json={"text": "a red square", "limit": 50, **body})
    assert response.status_code == 200, response.text
    return {hit["id"] for hit in response.json()["results"]}


def test_each_tenant_sees_only_its_own(world: World) -> None:
    with world.client("acme") as acme, world.client("globex") as globex:
        shared_a = upload(acme, RED)
        only_a = upload(acme, GREEN)
        shared_b = upload(globex, RED)
        # The same bytes: the same id, and nothing tells globex that acme has them.
        assert shared_a["id"] == shared_b["id"]
        assert shared_a["duplicate"] is False
        assert shared_b["duplicate"] is False
        assert upload(acme, RED)["duplicate"] is True  # its own: a duplicate
        assert listed(acme) == {shared_a["id"], only_a["id"]}
        assert listed(globex) == {shared_b["id"]}
        assert acme.get("/v1/images").json()["total"] == 2
        assert searched(acme) == {shared_a["id"], only_a["id"]}
        for target in ("caption", "hybrid"):
            assert searched(globex, target=target) <= {shared_b["id"]}
        assert searched(globex) == {shared_b["id"]}
        # Another tenant's image is as unknown as one nobody has: the same 404.
        unknown = "0" * 32
        for path in ("", "/content", "/thumbnail"):
            theirs = globex.get(f"/v1/images/{only_a['id']}{path}")
            nobodys = globex.get(f"/v1/images/{unknown}{path}")
            assert theirs.status_code == nobodys.status_code == 404
            assert theirs.json()["title"] == nobodys.json()["title"]
            assert acme.get(f"/v1/images/{only_a['id']}{path}").status_code == 200
        assert globex.post("/v1/search", json={"image_id": only_a["id"]}).status_code == 404
        assert globex.delete(f"/v1/images/{only_a['id']}").status_code == 404
        assert acme.get(f"/v1/images/{only_a['id']}").status_code == 200
        # Deleting is per tenant; the shared blob stays while globex holds it.
        assert acme.delete(f"/v1/images/{shared_a['id']}").status_code == 204
        assert acme.get(f"/v1/images/{shared_a['id']}").status_code == 404
        # Metrics carry the caller's tenant.
        metrics = httpx.get(f"{world.url}/metrics").text
        for tenant in ("acme", "globex"):
            assert f'mmrag_ingested_images_total{{outcome="indexed",tenant="{tenant}"}}' in metrics
        content = globex.get(f"/v1/images/{shared_b['id']}/content")
        assert content.status_code == 200
        assert content.content == RED


def test_the_agent_answers_from_the_callers_images_only(world: World) -> None:
    with world.client("acme") as acme, world.client("globex") as globex:
        mine = upload(globex, BLUE)["id"]
        theirs = upload(acme, RED)["id"]
        response = globex.post("/v1/ask", json={"question": "show me a red square"})
        assert response.status_code == 200, response.text
        cited = {citation["image_id"] for citation in response.json()["citations"]}
        assert cited <= {mine}
        refused = globex.post("/v1/ask", json={"question": "what is this?", "image_id": theirs})
        assert refused.status_code == 404


def test_jobs_are_the_tenants_own(world: World) -> None:
    with world.client("acme") as acme, world.client("globex") as globex:
        upload(acme, RED)
        spec = {"source": {"kind": "indexed"}, "tasks": [{"task": "embed"}]}
        submitted = acme.post("/v1/jobs", json=spec)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert acme.get(f"/v1/jobs/{job_id}").status_code == 200
        assert [job["id"] for job in acme.get("/v1/jobs").json()["items"]] == [job_id]
        assert globex.get("/v1/jobs").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
        for path in ("", "/items", "/export", "/events"):
            assert globex.get(f"/v1/jobs/{job_id}{path}").status_code == 404
        assert globex.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
        # globex holds no image: its indexed source is empty, whatever acme holds.
        assert globex.post("/v1/jobs", json=spec).status_code == 422


def test_keys_are_checked_on_every_request(world: World) -> None:
    with world.client("acme_reader") as reader, world.client("") as nobody:
        assert reader.get("/v1/images").status_code == 200
        refused = reader.post("/v1/images", files=[("files", ("a.png", RED, "image/png"))])
        assert refused.status_code == 403
        assert nobody.get("/v1/images").status_code == 401
        for header in ("Bearer", "Basic abc", "Bearer a b", "bearer"):
            assert nobody.get("/v1/images", headers={"Authorization": header}).status_code == 401
        assert nobody.get("/v1/images", headers={"X-API-Key": ""}).status_code == 401
        # Revoked from another process's connection: refused at the next request.
        keys = KeyStore.in_data_dir(world.data_dir)
        keys.revoke(world.key_ids["acme_reader"])
        keys.delete_tenant("initech")
        keys.close()
        assert reader.get("/v1/images").status_code == 401
    with world.client("doomed") as doomed:
        assert doomed.get("/v1/images").status_code == 401


def test_a_key_in_the_query_string_is_refused_and_never_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    secret = world.secrets["acme"]
    with caplog.at_level(logging.INFO), world.client("") as nobody:
        for name in ("api_key", "key", "token"):
            response = nobody.get("/v1/images", params={name: secret})
            assert response.status_code == 401
            assert "query string" in response.json()["detail"]
    # The server's records (access log, audit); the test's own client logs the URL it sent.
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "uvicorn.access" for r in served)
    assert secret not in json.dumps([r.__dict__ for r in served], default=str)


def test_writes_and_refusals_are_audited(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, "mmrag.audit"),
        world.client("acme") as acme,
        world.client("acme_reader") as reader,
    ):
        upload(acme, RED)
        reader.post("/v1/images", files=[("files", ("a.png", RED, "image/png"))])
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "mmrag.audit"]
    write = next(line for line in lines if line["status"] == 201)
    assert (write["key"], write["tenant"], write["route"]) == ("acme", "acme", "/v1/images")
    denied = next(line for line in lines if line["status"] == 403)
    assert (denied["key"], denied["tenant"], denied["method"]) == ("acme_reader", "acme", "POST")
    audit = "\n".join(r.getMessage() for r in caplog.records if r.name == "mmrag.audit")
    for secret in world.secrets.values():
        assert secret not in audit


def test_admin_lists_tenants_and_usage(world: World) -> None:
    with world.client("acme") as acme, world.client("ops") as ops:
        upload(acme, RED)
        upload(acme, GREEN)
        assert acme.get("/v1/admin/tenants").status_code == 403
        response = ops.get("/v1/admin/tenants")
        assert response.status_code == 200, response.text
        usage = {item["name"]: item for item in response.json()["items"]}
        assert usage["acme"]["images"] == 2
        assert usage["acme"]["bytes"] == len(RED) + len(GREEN)
        assert usage["acme"]["active_keys"] == 2
        assert usage["globex"]["images"] == 0


@pytest.mark.parametrize("tenant", ["../etc", "a/b", "", "slack:T1", "a b"])
def test_tenant_names_with_path_characters_are_refused(tmp_path: Path, tenant: str) -> None:
    keys = KeyStore.in_data_dir(tmp_path)
    with pytest.raises(InvalidInput):
        keys.create(tenant, parse_scopes("read"))
    keys.close()


def test_rate_limits_answer_429_and_recover(tmp_path: Path, tiny_clip_dir: Path) -> None:
    with (
        started(tmp_path, tiny_clip_dir, "edge", {"search_per_s": 2, "ask_per_s": 1}) as running,
        running.client("acme") as acme,
        running.client("globex") as globex,
    ):
        answers = [acme.post("/v1/search", json={"text": "red"}) for _ in range(6)]
        limited = [answer for answer in answers if answer.status_code == 429]
        assert limited, [answer.status_code for answer in answers]
        assert all(a.status_code in (200, 429) for a in answers)
        wait = int(limited[0].headers["Retry-After"])
        assert 1 <= wait <= 2
        assert limited[0].headers["content-type"].startswith("application/problem+json")
        # Per key: the other key is not slowed down.
        assert globex.post("/v1/search", json={"text": "red"}).status_code == 200
        time.sleep(wait)
        assert acme.post("/v1/search", json={"text": "red"}).status_code == 200
        asks = [acme.post("/v1/plan", json={"question": "a red square?"}) for _ in range(4)]
        assert 429 in [answer.status_code for answer in asks]


def test_images_a_day_refuse_before_storing(tmp_path: Path, tiny_clip_dir: Path) -> None:
    with (
        started(tmp_path, tiny_clip_dir, "edge", {"images_per_day": 2}) as running,
        running.client("acme") as acme,
        running.client("acme_reader") as reader,
    ):
        upload(acme, RED)
        upload(acme, GREEN)
        refused = acme.post("/v1/images", files=[("files", ("b.png", BLUE, "image/png"))])
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 86400
        assert "a day" in refused.json()["detail"]
        assert reader.get("/v1/images").json()["total"] == 2
        # Another key (of another tenant) has its own day.
        with running.client("globex") as globex:
            upload(globex, BLUE)


def test_tenant_quota_refuses_before_storing(tmp_path: Path, tiny_clip_dir: Path) -> None:
    with (
        started(tmp_path, tiny_clip_dir, "edge", {"max_images": 2}) as running,
        running.client("acme") as acme,
    ):
        upload(acme, RED)
        two = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate((GREEN, BLUE))]
        refused = acme.post("/v1/images", files=two)
        assert refused.status_code == 413, refused.text
        assert refused.json()["title"] == "Quota exceeded"
        assert acme.get("/v1/images").json()["total"] == 1
        upload(acme, GREEN)  # one more fits


def test_absurd_limits_stop_the_server_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    for name, value in (("SEARCH_PER_S", "0"), ("MAX_BYTES", "-1"), ("CONCURRENT_JOBS", "1e9")):
        monkeypatch.setenv(f"MMRAG_TENANCY__{name}", value)
        result = CliRunner().invoke(app, ["serve", "--port", "1"])
        monkeypatch.delenv(f"MMRAG_TENANCY__{name}")
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert "tenancy" in result.output


def noise_png(seed: int, side: int = 480) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_tenant_byte_quota_refuses_before_storing(tmp_path: Path, tiny_clip_dir: Path) -> None:
    first, second = noise_png(1), noise_png(2)
    assert 600_000 < len(first) < 1024**2 < len(first) + len(second)
    with (
        started(tmp_path, tiny_clip_dir, "edge", {"max_bytes": 1024**2}) as running,
        running.client("acme") as acme,
    ):
        upload(acme, first)
        refused = acme.post("/v1/images", files=[("files", ("b.png", second, "image/png"))])
        assert refused.status_code == 413, refused.text
        assert "bytes" in refused.json()["detail"]
        assert acme.get("/v1/images").json()["total"] == 1
        digest = hashlib.sha256(second).hexdigest()
        stored = {path.name for path in (running.data_dir / "blobs").rglob("*")}
        assert digest not in stored
