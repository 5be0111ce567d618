"""The HTTP client of the agent's OpenAI-compatible chat endpoint, shared by the planner
(agents/llm_planner.py) and the composer (agents/llm_composer.py)."""

from __future__ import annotations

import httpx

from mmrag.config import AgentSettings


def chat_client(
    settings: AgentSettings, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client for ``settings.llm_url``, with its bearer key when one is set; ``transport``
    lets tests answer in-process."""
    headers = {}
    if settings.llm_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    return httpx.Client(
        base_url=settings.llm_url.rstrip("/"),
        headers=headers,
        timeout=settings.llm_timeout_s,
        transport=transport,
    )
