"""``/v1/ask`` proposing a job and ``confirm`` starting it, over real HTTP with API keys: only
the caller who was asked, in the same thread, with the write scope, starts it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from agents.fake_openai import FakeOpenAI, captioning_proposal
from api.live_server import LiveServer
from workers.shapes_scenes import held_out, png_of

from mmrag.config import AuthSettings

PROBLEM = "application/problem+json"


def test_a_proposed_job_starts_only_on_its_callers_confirmation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_mmrag_env(monkeypatch)
    keys = [
        {"name": name, "sha256": hashlib.sha256(name.encode()).hexdigest(), "scopes": scopes}
        for name, scopes in (
            ("alice", ["read", "write"]),
            ("bob", ["read"]),
            ("carol", ["read", "write"]),
        )
    ]
    alice, bob, carol = ({"x-api-key": name} for name in ("alice", "bob", "carol"))
    with FakeOpenAI() as llm:
        llm.reply = captioning_proposal("circle", 2)
        settings = world_settings(
            tmp_path / "data", "fixture:shapes-vlm", planner="llm", llm_url=llm.url
        ).model_copy(update={"auth": AuthSettings.model_validate({"api_keys": keys})})
        with (
            LiveServer(settings) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            # Wired at start-up, before any /v1/ask: every surface's agent can start jobs.
            services = server.app.state.services
            assert services.job_starter == server.app.state.jobs.submit_for_agent
            files = [("files", (f"{s.seed}.png", png_of(s), "image/png")) for s in held_out(3)]
            assert client.post("/v1/images", files=files, headers=alice).status_code == 201
            ask = {"question": "caption every circle photo", "thread_id": "j"}
            asked = client.post("/v1/ask", json=ask, headers=bob).json()
            assert asked["pending"]["task"] == "caption"
            assert asked["pending"]["images"] == 2
            confirm = {"question": "yes", "thread_id": "j", "confirm": True}
            # Bob was asked, but may not start work: confirming is a write.
            refused = client.post("/v1/ask", json=confirm, headers=bob)
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith(PROBLEM)
            # Carol may write, but her "j" is another conversation with nothing pending.
            stranger = client.post("/v1/ask", json=confirm, headers=carol)
            assert stranger.status_code == 422
            assert "nothing in this thread waits" in stranger.json()["detail"]
            assert client.get("/v1/jobs", headers=alice).json()["total"] == 0
            # Alice's own proposal, confirmed by her, starts.
            client.post("/v1/ask", json=ask, headers=alice).raise_for_status()
            no_thread = client.post(
                "/v1/ask", json={"question": "yes", "confirm": True}, headers=alice
            )
            assert no_thread.status_code == 422
            done = client.post("/v1/ask", json=confirm, headers=alice).json()
            assert done["pending"] is None
            [outcome] = done["trace"][-1]["outputs"]
            assert outcome["started"] is True
            job = client.get(f"/v1/jobs/{outcome['job_id']}", headers=alice)
            assert job.status_code == 200
            assert job.json()["total"] == 2
            assert client.get("/v1/jobs", headers=alice).json()["total"] == 1
