"""How the engine adapter talks to its engine (settings: ``MMRAG_MODELS__ENGINE__*``).

The defaults live in one place, mmrag/config.py's EngineSettings (models import no settings):
build these with workers/executor.py's ``engine_options``."""

from __future__ import annotations

from dataclasses import dataclass

from mmrag.models.engine.images import ImageFormat


@dataclass(frozen=True)
class EngineOptions:
    timeout_s: float  # one request, connect to last byte (streamed: between chunks)
    connect_timeout_s: float
    # Requests in flight per worker process and model: the engine batches them itself
    # (continuous batching), so a worker keeps several in flight instead of micro-batching.
    max_in_flight: int
    # 503 and 429 (the engine busy or rate-limiting) and refused connections are retried,
    # after the engine's Retry-After, else min(backoff_s * 2**attempt, backoff_max_s).
    max_retries: int
    backoff_s: float
    backoff_max_s: float
    # Images are resized (aspect kept) to at most this many pixels before sending: the
    # engine's own limit (vLLM's Qwen2.5-VL default max_pixels is 12.8 M; 1 M is plenty).
    max_image_pixels: int  # 1_003_520 by default: 1280 visual tokens of 28 x 28 px
    min_image_pixels: int  # 3_136 by default, 56 x 56: the smallest Qwen-VL processors take
    image_format: ImageFormat  # auto: PNG for small images, JPEG for large (images.py)
    stream: bool  # server-sent events; the timeout then bounds each gap
    logprobs: bool  # ask for token log-probabilities (the answer's score)
    api_key: str | None
