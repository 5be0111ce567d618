"""The OpenAPI document states what the API really sends: every problem status with its
problem+json body, the request bodies of routes that read them by hand, and the limits the
settings put on requests. Checked over real HTTP against the responses the server gives."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mmrag.config import Settings

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def document(live_api: httpx.Client) -> dict[str, Any]:
    response = live_api.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_every_v1_problem_is_declared_as_problem_json(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        if not path.startswith("/v1/"):
            continue
        responses = operation["responses"]
        expected = {"401", "403", "422", "503"}
        if "{" in path:
            expected.add("404")
        if method == "post" and not path.endswith("/cancel"):
            expected |= {"400", "413"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"] == {PROBLEM: {"schema": PROBLEM_REF}}, (path, status)
        assert "Retry-After" in responses["503"]["headers"]
    # FastAPI's own validation error shape is never sent, so it is never declared.
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_tool_routes_declare_their_json_and_form_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for tool, request in (("caption", "CaptionRequest"), ("detect", "DetectRequest")):
        content = document["paths"][f"/v1/{tool}"]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith(request)
        assert content["multipart/form-data"]["schema"]["$ref"].endswith(request + "Form")
        assert "image_id" in schemas[request]["required"]
        form = schemas[request + "Form"]
        assert "file" in form["required"]
        assert "image_id" not in form["properties"]
        assert form["additionalProperties"] is False


def test_configured_limits_and_models_are_stated(
    document: dict[str, Any], settings: Settings
) -> None:
    schemas = document["components"]["schemas"]
    search = schemas["SearchRequest"]["properties"]
    assert search["limit"]["maximum"] == settings.limits.search_max_limit
    assert search["offset"]["maximum"] == settings.limits.search_max_offset
    question = schemas["AskBody"]["properties"]["question"]
    assert question["maxLength"] == settings.agent.max_question_chars
    model = schemas["DetectRequest"]["properties"]["model"]["anyOf"][0]
    assert settings.model_spec("grounding") in model["enum"]


def test_a_declared_problem_is_what_the_server_sends(
    live_api: httpx.Client, document: dict[str, Any]
) -> None:
    problem_schema = document["components"]["schemas"]["Problem"]
    response = live_api.get("/v1/images/" + "0" * 32)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert set(problem_schema["required"]) <= set(body)
    assert body["status"] == 404


def test_a_path_that_is_not_an_id_reaches_no_route(live_api: httpx.Client) -> None:
    # GET on a POST-only path under /v1/images is 405 naming POST, not a 422 about an id.
    response = live_api.get("/v1/images/from-paths")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_method_not_allowed_names_every_method_of_the_path(live_api: httpx.Client) -> None:
    response = live_api.put("/v1/images/" + "0" * 32)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"text": "a", "offset": False}, "boolean"),
        ({"text": "a", "filter": {"height": {"lte": True}}}, "boolean"),
        ({"text": "a", "filter": {"created": {"gte": 0}}}, "ISO 8601"),
        ({"text": "a", "filter": {"width": {"lte": None}}}, "give gte, lte or both"),
        ({"image_b64": ""}, "image_b64"),
        ({"text": "   "}, "text"),
    ],
)
def test_search_refuses_what_its_schema_refuses(
    live_api: httpx.Client, body: dict[str, Any], detail: str
) -> None:
    response = live_api.post("/v1/search", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
