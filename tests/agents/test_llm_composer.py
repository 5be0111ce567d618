"""The LLM composer over a fake OpenAI-compatible server on loopback: it rephrases, and a
claim citing an image the trace never saw is dropped and logged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from agents.conftest import world_settings
from agents.fake_openai import FakeOpenAI
from workers.shapes_scenes import held_out, index_scenes

from mmrag.services import Services

pytestmark = pytest.mark.usefixtures("clean_env")
STRANGER = "f" * 32


def text_reply(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
    }


def test_the_composer_phrases_and_drops_claims_about_unseen_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeOpenAI() as llm:
        settings = world_settings(
            tmp_path / "data", "fixture:shapes-vlm", composer="llm", llm_url=llm.url
        )
        services = Services.open(settings)
        try:
            scene = held_out(1, lambda s: bool(s.find("blue", "triangle")))[0]
            [image_id] = index_scenes(services, [scene])
            agent = services.agent()
            llm.reply = text_reply(
                f"You will find the blue triangle in [{image_id}], near the middle. "
                f"It is also in [{STRANGER}] at [0, 0, 9, 9]."
            )
            with caplog.at_level(logging.WARNING, logger="mmrag.agents.llm_composer"):
                phrased = agent.ask("where is the blue triangle?", image_id=image_id)
            llm.status = 500
            plain = agent.ask("where is the blue triangle?", image_id=image_id)
        finally:
            services.close()
    assert phrased.answer == f"You will find the blue triangle in [{image_id}], near the middle."
    assert STRANGER in caplog.text
    assert "dropped a claim" in caplog.text
    # The structured citations are the rules' own; the LLM saw the draft, not the image.
    assert phrased.citations == plain.citations
    assert [c["image_id"] for c in phrased.citations] == [image_id]
    draft = llm.requests[0]["messages"][1]["content"]
    assert draft.startswith("Question: where is the blue triangle?\nDraft: The blue triangle is")
    # The endpoint failing leaves the rules' sentences.
    assert plain.answer.startswith(f"The blue triangle is in [{image_id}] at [")
