"""The start-up check of every engine-served spec: up, and serving the named model."""

from __future__ import annotations

from collections.abc import Iterable

from mmrag.models.engine.client import EngineClient
from mmrag.models.engine.options import EngineOptions
from mmrag.models.engine.target import engine_target
from mmrag.models.spec import parse_spec


def check_engines(specs: Iterable[str], options: EngineOptions) -> None:
    """Raise :class:`~mmrag.errors.ModelUnavailable` naming the first ``openai:`` spec whose
    engine is unreachable or serves other models; other specs are not looked at."""
    for text in sorted(set(specs)):
        spec = parse_spec(text)
        if spec.scheme != "openai":
            continue
        client = EngineClient(engine_target(spec), options)
        try:
            client.check()
        finally:
            client.close()
