"""The test engine's brain: answers chat requests the way an engine serving a VLM would, with
the trained fixture models, so that what the adapter reads back is checkable on shapes scenes.

- a caption prompt or a question: the fixture VLM generates from the image it was sent,
  and its mean token probability becomes the reply's log-probabilities;
- a Qwen grounding prompt (``Locate every "<phrase>" ...``): the fixture grounding model's
  boxes for the phrase, written as Qwen2.5-VL writes them (JSON, absolute pixels of the image
  received), or as Florence-2 location tokens for a ``<CAPTION_TO_PHRASE_GROUNDING>`` prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.fake_openai import Reply, decode_data_url, text_reply

from mmrag.models.vision import VisionModel
from mmrag.models.vlm.generative import GenerativeVlm

_QWEN_GROUND = re.compile(r'^Locate every "(?P<phrase>.+)" in the image')
FLORENCE_GROUND = "<CAPTION_TO_PHRASE_GROUNDING>"


class FixtureEngine:
    def __init__(self, vlm: GenerativeVlm, grounding: VisionModel) -> None:
        self.vlm = vlm
        self.grounding = grounding

    def __call__(self, request: dict[str, Any]) -> Reply:
        [message] = request["messages"]
        parts = message["content"]
        [url] = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
        [prompt] = [part["text"] for part in parts if part["type"] == "text"]
        image = decode_data_url(url)
        model = str(request["model"])
        qwen = _QWEN_GROUND.match(prompt)
        if qwen or prompt.startswith(FLORENCE_GROUND):
            phrase = qwen["phrase"] if qwen else prompt.removeprefix(FLORENCE_GROUND)
            [boxes] = self.grounding.ground([image], [[phrase]])
            if not boxes:
                return text_reply("There is none in the image.", 0.9, model)
            score = boxes[0].score
            if qwen:
                found = [
                    {"bbox_2d": [round(value) for value in box.box], "label": phrase}
                    for box in boxes
                ]
                return text_reply(f"```json\n{json.dumps(found)}\n```", score, model)
            width, height = image.size
            locations = "".join(
                "".join(
                    f"<loc_{min(int(value / side * 1000), 999)}>"
                    for value, side in zip(box.box, (width, height, width, height), strict=True)
                )
                for box in boxes
            )
            return text_reply(f"{phrase}{locations}", score, model)
        [generated] = self.vlm.generate([image], [prompt])
        return text_reply(generated.text, generated.score, model)
