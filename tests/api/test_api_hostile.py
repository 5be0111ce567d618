"""The defects a hostile client found (each a 500 before): JSON nested deeper than any parser
recurses, integers the store cannot hold, and strings where JSON booleans belong. Each is a
problem+json 4xx, and nothing is stored."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def assert_problem(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert words in response.json()["detail"]


def stored(client: httpx.Client) -> int:
    total: int = client.get("/v1/images").json()["total"]
    return total


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_search_filter_integer_outside_int64(live_api: httpx.Client, value: int) -> None:
    # Written by hand: the JSON encoder would write the integer as it is, but be explicit.
    body = f'{{"text": "red", "filter": {{"metadata": {{"year": {value}}}}}}}'
    response = live_api.post("/v1/search", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


def test_int64_edges_are_accepted(live_api: httpx.Client) -> None:
    for value in (2**63 - 1, -(2**63)):
        response = live_api.post(
            "/v1/search", json={"text": "red", "filter": {"metadata": {"year": value}}}
        )
        assert response.status_code == 200, response.text


def test_job_indexed_filter_integer_outside_int64(live_api: httpx.Client) -> None:
    spec = {
        "source": {"kind": "indexed", "filter": {"metadata": {"n": 10**30}}},
        "tasks": [{"task": "embed"}],
    }
    response = live_api.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert live_api.get("/v1/jobs").json()["total"] == 0


def test_upload_metadata_nested_100000_levels(live_api: httpx.Client) -> None:
    response = live_api.post(
        "/v1/images",
        files=[("files", ("a.png", png_bytes((200, 10, 10)), "image/png"))],
        data={"metadata": nested(100_000)},
    )
    assert_problem(response, 422, "nests deeper than")
    assert stored(live_api) == 0


def test_upload_metadata_integer_outside_int64(live_api: httpx.Client) -> None:
    response = live_api.post(
        "/v1/images",
        files=[("files", ("a.png", png_bytes((200, 10, 10)), "image/png"))],
        data={"metadata": json.dumps({"n": {"deep": [2**64]}})},
    )
    assert_problem(response, 422, "outside signed 64-bit")
    assert stored(live_api) == 0


@pytest.mark.parametrize("route", ["/v1/caption", "/v1/vqa", "/v1/ground", "/v1/detect"])
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_tool_bodies_nested_10000_levels(
    live_api: httpx.Client, route: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = live_api.post(route, content=nested(10_000), headers=headers)
    assert_problem(response, 422, "nests deeper than")


@pytest.mark.parametrize("route", ["/v1/search", "/v1/ask", "/v1/plan", "/v1/jobs"])
def test_every_json_body_is_bounded(live_api: httpx.Client, route: str) -> None:
    response = live_api.post(
        route, content=nested(5_000), headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "nests deeper than")


def test_json_body_size_is_bounded(live_api: httpx.Client) -> None:
    body = json.dumps({"text": "x" * (5 * 1024 * 1024)})
    response = live_api.post(
        "/v1/search", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "bytes of JSON")


def test_brackets_inside_strings_do_not_count(live_api: httpx.Client) -> None:
    response = live_api.post("/v1/search", json={"text": "[[[[{{{{" * 100})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_stream_takes_json_booleans_only(live_api: httpx.Client, value: object) -> None:
    response = live_api.post("/v1/ask", json={"question": "what is red?", "stream": value})
    assert response.status_code == 422, response.text
    assert "stream" in response.json()["detail"]
