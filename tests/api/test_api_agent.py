"""``/v1/plan`` and ``/v1/ask`` over real HTTP, on the shapes world with the fixture models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from api.live_server import LiveServer
from workers.shapes_scenes import held_out, png_of

from mmrag.config import AuthSettings
from mmrag.models.fixtures.evaluate_grounding import box_iou
from mmrag.models.fixtures.shapes import ShapeScene

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def agent_api(
    tmp_path_factory: pytest.TempPathFactory, tiny_vlm_spec: str
) -> Iterator[tuple[httpx.Client, dict[str, ShapeScene]]]:
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        settings = world_settings(tmp_path_factory.mktemp("agent-api") / "data", tiny_vlm_spec)
        with (
            LiveServer(settings) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            scenes = held_out(8)
            files = [("files", (f"{s.seed}.png", png_of(s), "image/png")) for s in scenes]
            response = client.post("/v1/images", files=files)
            assert response.status_code == 201, response.text
            ids = [item["id"] for item in response.json()["items"]]
            yield client, dict(zip(ids, scenes, strict=True))


def events_of(response: httpx.Response) -> list[tuple[str, Any]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_plan_returns_the_plan_and_runs_nothing(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, scenes = agent_api
    response = client.post("/v1/plan", json={"question": "which of my photos has the most people?"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "steps": [
            {"tool": "retrieve", "args": {"query": "people"}},
            {"tool": "count", "args": {"on": "hits", "phrase": "person", "rank": "most"}},
        ],
        "planner": "local",
    }
    image_id = next(iter(scenes))
    with_image = client.post("/v1/plan", json={"question": "describe this", "image_id": image_id})
    assert with_image.json()["steps"] == [
        {"tool": "caption", "args": {"on": "image", "detail": "short"}}
    ]
    payload = client.get(f"/v1/images/{image_id}").json()
    assert not payload.get("captions")  # nothing ran, nothing was written back


def test_ask_answers_with_a_grounded_box(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, scenes = agent_api
    image_id, scene = next((i, s) for i, s in scenes.items() if s.find("blue", "triangle"))
    response = client.post(
        "/v1/ask", json={"question": "where is the blue triangle?", "image_id": image_id}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "answer",
        "citations",
        "weak_evidence",
        "plan",
        "trace",
        "thread_id",
        "took_ms",
        "pending",
    }
    assert body["pending"] is None  # no job proposed
    [citation] = body["citations"]
    assert box_iou(tuple(citation["box"]), scene.find("blue", "triangle")[0].box) >= 0.5
    assert body["trace"][0]["tool"] == "ground"
    assert body["trace"][0]["ms"] > 0


def test_ask_streams_plan_progress_tokens_and_the_answer(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, _ = agent_api
    question = "find images with a red circle and tell me what colour the square is"
    response = client.post("/v1/ask", json={"question": question, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response)
    names = [name for name, _ in events]
    assert names[:5] == ["plan", "tool_start", "tool_end", "tool_start", "tool_end"]
    assert set(names[5:-1]) == {"token"}
    assert names[-1] == "answer"
    assert events[0][1]["steps"][1]["tool"] == "vqa"
    answer = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "token") == answer["answer"]
    assert [entry["tool"] for entry in answer["trace"]] == ["retrieve", "vqa"]


def test_a_thread_continues_over_http(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, _ = agent_api
    first = client.post("/v1/ask", json={"question": "show me a green square"}).json()
    thread = first["thread_id"]
    second = client.post(
        "/v1/ask", json={"question": "and the second one?", "thread_id": thread}
    ).json()
    assert second["thread_id"] == thread
    assert second["trace"][0]["image_ids"] == [first["citations"][1]["image_id"]]


def test_threads_belong_to_the_api_key_that_started_them(
    tmp_path: Path, tiny_vlm_spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_mmrag_env(monkeypatch)
    keys = [
        {"name": name, "sha256": hashlib.sha256(name.encode()).hexdigest(), "scopes": scopes}
        for name, scopes in (("alice", ["read", "write"]), ("bob", ["read"]))
    ]
    settings = world_settings(tmp_path / "data", tiny_vlm_spec).model_copy(
        update={"auth": AuthSettings.model_validate({"api_keys": keys})}
    )
    alice, bob = {"x-api-key": "alice"}, {"x-api-key": "bob"}
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        files = [("files", (f"{s.seed}.png", png_of(s), "image/png")) for s in held_out(4)]
        assert client.post("/v1/images", files=files, headers=alice).status_code == 201
        ask = {"question": "show me a green square", "thread_id": "chat"}
        first = client.post("/v1/ask", json=ask, headers=alice).json()
        follow_up = {"question": "and the second one?", "thread_id": "chat"}
        # Bob's "chat" is a conversation of its own: nothing of Alice's to refer to.
        theirs = client.post("/v1/plan", json=follow_up, headers=bob).json()
        assert theirs["steps"][0]["tool"] == "retrieve"
        bobs = client.post("/v1/ask", json=follow_up, headers=bob).json()
        assert bobs["trace"][0]["tool"] == "retrieve"
        mine = client.post("/v1/ask", json=follow_up, headers=alice).json()
        assert mine["trace"][0]["image_ids"] == [first["citations"][1]["image_id"]]
        anonymous = client.post("/v1/ask", json=follow_up)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("path", ["/v1/plan", "/v1/ask"])
@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "  \n "}, 422, "empty"),
        ({"question": "why? " * 4_000}, 422, "over 2000 characters"),
        ({}, 422, "question"),
        ({"question": "hi", "tool": "read_file"}, 422, "tool"),
        ({"question": "describe", "image_id": "../etc/passwd"}, 422, "image_id"),
        ({"question": "describe", "image_id": "f" * 32}, 404, "no image with id"),
        ({"question": "hi", "thread_id": "a b"}, 422, "thread_id"),
        ({"question": "hi", "stream": True, "image_id": "f" * 32}, 404, "no image"),
        ({"question": 42}, 422, "question"),
        ({"question": ["where is it?"]}, 422, "question"),
        ({"question": "hi", "stream": "yes please"}, 422, "stream"),
    ],
)
def test_bad_requests_get_problem_json(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]],
    path: str,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    client, _ = agent_api
    if path == "/v1/plan" and body.get("stream") is True:
        body = {k: v for k, v in body.items() if k != "stream"}
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert detail in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/plan", "/v1/ask"])
def test_a_body_that_is_not_json_gets_problem_json(
    agent_api: tuple[httpx.Client, dict[str, ShapeScene]], path: str
) -> None:
    client, _ = agent_api
    response = client.post(
        path, content=b"question=where is it", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
