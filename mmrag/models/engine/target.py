"""What an ``openai:`` spec names: an engine's base URL and the model id it serves.

Syntax: ``openai:<base URL>#<model id>``, e.g.
``openai:http://vllm:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct``. The base URL is the one the
OpenAI SDK takes (it ends before ``/chat/completions``); the model id is exactly what the
engine lists under ``GET <base URL>/models`` (vLLM: ``--served-model-name``, else the path or
hub id it loaded).

How boxes are written differs by family and is read from the model id
(:func:`box_format`): Qwen2.5-VL writes absolute pixels of the image it was fed, Qwen2-VL and
Qwen3-VL write a 0-1000 grid, Florence-2 writes ``<loc_N>`` tokens (1000 bins). Other models
serve captions and answers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from mmrag.errors import UnknownModel
from mmrag.models.spec import ModelSpec

BoxFormat = Literal["qwen2.5", "grid1000", "florence", "none"]


@dataclass(frozen=True)
class EngineTarget:
    base_url: str  # no trailing slash
    model: str
    box_format: BoxFormat
    # Side multiple the engine's processor rounds images to: sending images already of that
    # shape makes its resize a no-op, so pixel boxes come back in the frame we sent.
    patch_multiple: int


def engine_target(spec: ModelSpec) -> EngineTarget:
    """The engine and model of an ``openai:`` spec; a URL or model id that cannot be right
    raises :class:`UnknownModel` (checked at start, before any request)."""
    if spec.scheme != "openai":
        raise UnknownModel(f"{spec} is not an engine spec (openai:<base URL>#<model id>)")
    url, hash_sign, model = spec.name.partition("#")
    if not hash_sign or not model.strip():
        raise UnknownModel(
            f"{spec}: name the model after the URL, as openai:http://host:8000/v1#<model id>"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnknownModel(f"{spec}: the engine URL must be http(s)://host[:port]/path")
    if parts.query or parts.username:
        raise UnknownModel(f"{spec}: the engine URL takes no query or credentials")
    family = model.lower()
    return EngineTarget(url.rstrip("/"), model, box_format(family), _patch_multiple(family))


def box_format(model: str) -> BoxFormat:
    """How the model writes boxes, from its (lower-cased) id."""
    if "qwen2.5-vl" in model or "qwen2_5_vl" in model:
        return "qwen2.5"
    if "qwen2-vl" in model or "qwen3-vl" in model:
        return "grid1000"
    if "florence" in model:
        return "florence"
    return "none"


def _patch_multiple(model: str) -> int:
    # Qwen2/2.5-VL: 14 px patches merged 2 x 2; Qwen3-VL: 16 px patches merged 2 x 2.
    if "qwen3-vl" in model:
        return 32
    if "qwen2" in model and "vl" in model:
        return 28
    return 1
