"""Model spec strings: ``scheme:name[@revision]``.

``open_clip:ViT-B-32@laion2b_s34b_b79k``, ``hf:Qwen/Qwen2.5-VL-3B-Instruct@<revision>``,
``local:/path/to/dir``, ``fixture:shapes-clip``, and a model served by an OpenAI-compatible
engine: ``openai:http://host:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct`` (the engine's base URL, then
``#`` and the model id the engine serves; see :mod:`mmrag.models.engine.target`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from mmrag.errors import UnknownModel

Scheme = Literal["open_clip", "hf", "local", "fixture", "openai"]
SCHEMES: tuple[Scheme, ...] = ("open_clip", "hf", "local", "fixture", "openai")

_SPEC = re.compile(r"^(?P<scheme>[a-z][a-z0-9_]*):(?P<name>[^@\s]+)(?:@(?P<revision>[^@\s]+))?$")


@dataclass(frozen=True)
class ModelSpec:
    scheme: Scheme
    name: str
    revision: str | None = None

    def __str__(self) -> str:
        suffix = f"@{self.revision}" if self.revision else ""
        return f"{self.scheme}:{self.name}{suffix}"


def parse_spec(text: str) -> ModelSpec:
    """Parse a spec string; unknown schemes and malformed strings raise :class:`UnknownModel`."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise UnknownModel(f"malformed model spec {text!r}: expected scheme:name[@revision]")
    scheme = match["scheme"]
    if scheme not in SCHEMES:
        raise UnknownModel(
            f"unknown model scheme {scheme!r} in {text!r}: expected one of {', '.join(SCHEMES)}"
        )
    if scheme in ("local", "openai") and match["revision"]:
        raise UnknownModel(f"a {scheme} model spec takes no revision: {text!r}")
    return ModelSpec(cast(Scheme, scheme), match["name"], match["revision"])


# The schemes each kind of model loads from (the registry's adapters).
EMBEDDER_SCHEMES: tuple[Scheme, ...] = ("open_clip", "local", "fixture")
VISION_SCHEMES: tuple[Scheme, ...] = ("hf", "local", "fixture", "openai")


def check_spec(text: str, schemes: tuple[Scheme, ...]) -> ModelSpec:
    """Parse a spec and check, without loading anything, that it can name a model of a kind
    that loads from ``schemes``: settings call this so that a typo stops the service at start
    instead of failing its first request."""
    spec = parse_spec(text)
    if spec.scheme not in schemes:
        raise UnknownModel(f"{spec}: this model loads from {', '.join(s + ':' for s in schemes)}")
    if spec.scheme == "fixture":
        from mmrag.models.fixtures.build import FIXTURES  # no torch: trainers load lazily

        if spec.name not in FIXTURES:
            raise UnknownModel(
                f"unknown fixture model {spec.name!r}: expected one of {', '.join(FIXTURES)}"
            )
    if spec.scheme == "openai":
        from mmrag.models.engine.target import engine_target

        engine_target(spec)  # raises on a URL or model id that cannot be right
    return spec
