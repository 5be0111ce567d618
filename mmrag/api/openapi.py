"""What the OpenAPI document says beyond FastAPI's defaults: the problem+json responses.

Clients are generated from ``/openapi.json``, so every status a route can send is declared
with the body it really has. FastAPI would declare 422 as ``application/json`` with its own
``HTTPValidationError``; our handlers answer every error as ``application/problem+json``
(see :mod:`mmrag.api.problems`), and this module says so.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from mmrag.api.events import EVENT_STREAM
from mmrag.api.problems import PROBLEM_JSON
from mmrag.config import ModelRole, Settings

Responses = dict[int | str, dict[str, Any]]

# The tool request bodies and the model each runs by default.
TOOL_REQUESTS: dict[str, ModelRole] = {
    "CaptionRequest": "vlm",
    "VqaRequest": "vlm",
    "GroundRequest": "grounding",
    "DetectRequest": "grounding",
}

_WHY: dict[int, str] = {
    400: "malformed: a body that does not parse, or a model spec that names no model",
    401: "an API key is required (keys are configured) and none or an unknown one was sent",
    403: "the key lacks the scope, or the path or address is not allowed",
    404: "no such image or job (another tenant's is as unknown as one nobody indexed), or a "
    "region search before any image of the tenant has region vectors",
    413: "too large: the body (a JSON body past limits.max_json_bytes), an image, too many "
    "items in one request, or the tenant's storage quota (images, bytes) would be exceeded",
    415: "not an image in a supported format",
    429: "over the key's rate (searches, questions per second), its images per day, or the "
    "tenant's concurrent jobs; retry after the Retry-After header",
    422: "the request breaks a constraint (JSON nested past limits.max_json_depth, an integer "
    "outside signed 64-bit included); `errors` lists each one for schema violations",
    502: "a source URL could not be fetched",
    507: "the disk is full: nothing of the request was kept; retry after the Retry-After "
    "header, once space returns",
    503: "not available now (a model still building, no worker, the store down, an embedder "
    "swap at its switch; a region search on a Qdrant collection made before region vectors); "
    "retry after the Retry-After header",
}


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, for people (``detail``) and programs (``type``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://mmrag.dev/problems/not-found"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def problems(*statuses: int) -> Responses:
    """The ``responses=`` entries for the problem statuses a route can send."""
    responses: Responses = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _WHY[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in (429, 503, 507):
            entry["headers"] = {"Retry-After": _header("seconds to wait before trying again")}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": _header("the scheme to use: Bearer")}
        responses[status] = entry
    return responses


# Every /v1 route: auth, the request's constraints, and the store or a model being down.
V1_PROBLEMS = problems(401, 403, 422, 503)
# Every route that reads a body.
BODY_PROBLEMS = problems(400, 413)


def event_stream(description: str, *events: str) -> dict[str, Any]:
    """A response that is a stream of server-sent events named ``events``, each carrying JSON
    (an ``error`` event carries a Problem)."""
    event = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": [*events, "error"]},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
        "required": ["event", "data"],
    }
    return {"description": description, "content": {EVENT_STREAM: {"schema": event}}}


def binary(media_type: str, description: str) -> dict[str, Any]:
    """A 200 response whose body is bytes of ``media_type`` (a pattern such as ``image/*``)."""
    return {
        "description": description,
        "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
    }


# Schemas that request bodies refer to without FastAPI knowing of them (routes that read the
# body themselves), by component name; they join the document's components.
_EXTRA_MODELS: dict[str, type[BaseModel]] = {}
_EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}
_REF = "#/components/schemas/{model}"
FORM_SUFFIX = "Form"


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema, which joins the document's components."""
    _EXTRA_MODELS[model.__name__] = model
    return {"$ref": _REF.format(model=model.__name__)}


def json_or_form_body(model: type[BaseModel], file_replaces: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that takes ``model`` as JSON, or as a multipart form with
    the same fields where an uploaded ``file`` takes the place of the ``file_replaces`` field.
    The two are the components ``<model>`` and ``<model>Form``."""
    schema = model.model_json_schema(ref_template=_REF)
    _EXTRA_SCHEMAS.update(schema.pop("$defs", {}))  # nested schemas join the components
    fields = {name: spec for name, spec in schema["properties"].items() if name != file_replaces}
    required = [name for name in schema.get("required", []) if name in fields]
    # In JSON the replaced field is required and not null.
    replaced = _non_null(schema["properties"][file_replaces])
    _EXTRA_SCHEMAS[model.__name__] = {
        **schema,
        "properties": {**schema["properties"], file_replaces: replaced},
        "required": [file_replaces, *required],
    }
    # A form field is text: it can be left out, never null.
    _EXTRA_SCHEMAS[model.__name__ + FORM_SUFFIX] = {
        "type": "object",
        "properties": {
            **{name: _non_null(spec) for name, spec in fields.items()},
            "file": {"type": "string", "format": "binary"},
        },
        "required": ["file", *required],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}},
                "multipart/form-data": {
                    "schema": {"$ref": _REF.format(model=model.__name__ + FORM_SUFFIX)}
                },
            },
        }
    }


def install(app: FastAPI, settings: Settings) -> None:
    """Generate the document once, with the Problem schema and the request bodies FastAPI
    does not see among its components, and the configured limits and models stated where
    requests meet them."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            models: list[type[BaseModel]] = [Problem, *_EXTRA_MODELS.values()]
            for model in models:
                model_schema = model.model_json_schema(ref_template=_REF)
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            components.update(copy.deepcopy(_EXTRA_SCHEMAS))
            _state_settings(components, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _state_settings(components: dict[str, Any], settings: Settings) -> None:
    """Limits and served models are settings, so the models cannot carry them: the document
    states the values this server enforces."""
    limits = settings.limits
    search = components["SearchRequest"]["properties"]
    search["limit"]["maximum"] = limits.search_max_limit
    search["offset"]["maximum"] = limits.search_max_offset
    _non_null(search["text"])["maxLength"] = limits.max_caption_chars
    upload = components["Body_upload_images_v1_images_post"]["properties"]
    upload["files"]["maxItems"] = limits.max_upload_files
    _non_null(upload["captions"])["maxItems"] = limits.max_upload_files
    components["FromUrlsRequest"]["properties"]["urls"]["maxItems"] = limits.max_urls
    for body in ("PlanBody", "AskBody"):
        components[body]["properties"]["question"]["maxLength"] = settings.agent.max_question_chars
    # A request may pick the tool's configured model or one of the allowed ones.
    for request, role in TOOL_REQUESTS.items():
        served = sorted({settings.model_spec(role), *settings.models.allowed})
        for name in (request, request + FORM_SUFFIX):
            _non_null(components[name]["properties"]["model"])["enum"] = served


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The variant of an optional field's schema that is not null."""
    return next(spec for spec in schema.get("anyOf", [schema]) if spec.get("type") != "null")
