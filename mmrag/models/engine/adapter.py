"""Captioning, VQA and grounding through an OpenAI-compatible engine.

No weights here: ``load()`` opens a connection pool and checks that the engine is up and
serves the spec's model, so a wrong URL or model stops a worker's preload (and the service's
start) with one line. Each image of a batch is one chat request; the worker's micro-batch is
sent as up to ``max_in_flight`` concurrent requests, and the engine batches them with every
other worker's (continuous batching), which keeps its GPU busy where one batch at a time
would idle it between batches.

Grounding asks once per image and phrase, like the Florence-2 adapter, so that each box is
labelled with the phrase that found it, in the caller's own spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from PIL import Image

from mmrag.errors import InvalidInput
from mmrag.models.base import Tool
from mmrag.models.engine.boxes import read_boxes
from mmrag.models.engine.client import Completion, EngineClient
from mmrag.models.engine.images import SentImage, prepare_image
from mmrag.models.engine.options import EngineOptions
from mmrag.models.engine.target import EngineTarget, engine_target
from mmrag.models.grounding.adapter import clean_text, phrase_lists, unique_texts
from mmrag.models.spec import ModelSpec
from mmrag.models.vision import (
    Answer,
    Box,
    CaptionDetail,
    ToolNotServed,
    VisionModel,
    VisionOptions,
)
from mmrag.models.vlm.prompts import CAPTION_PROMPTS

T = TypeVar("T")

# Room for the boxes of one phrase: Qwen's JSON takes about 30 tokens a box.
MIN_BOX_TOKENS = 256
FLORENCE_CAPTION_TASKS: dict[CaptionDetail, str] = {
    "short": "<CAPTION>",
    "detailed": "<DETAILED_CAPTION>",
}
FLORENCE_GROUND_TASK = "<CAPTION_TO_PHRASE_GROUNDING>"


class EngineVlm(VisionModel):
    """A chat VLM on an engine: captions and answers."""

    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "vqa"})

    def __init__(
        self,
        spec: ModelSpec,
        options: VisionOptions = VisionOptions(),
        client_factory: Callable[[EngineTarget], EngineClient] | None = None,
    ) -> None:
        super().__init__(spec, options)
        if options.engine is None:
            raise InvalidInput(f"{spec} is served by an engine: give it the engine options")
        self.engine: EngineOptions = options.engine
        self.target = engine_target(spec)
        engine = options.engine
        self._client_factory = client_factory or (lambda target: EngineClient(target, engine))
        self.client: EngineClient | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _load(self) -> None:
        client = self._client_factory(self.target)
        try:
            client.check()
        except BaseException:
            client.close()
            raise
        self.client = client
        self._pool = ThreadPoolExecutor(self.engine.max_in_flight, thread_name_prefix="engine")

    def _unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()
        self._pool = None
        self.client = None

    def memory_bytes(self) -> int:
        return 0  # the weights live in the engine

    # -- tools -----------------------------------------------------------------------------

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        self._require("caption")
        prompt = self.caption_prompt(detail)
        return [done.text for done in self._ask_each(images, [prompt] * len(images))]

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        self._require("vqa")
        if isinstance(questions, str):
            raise InvalidInput("answer takes a list of questions, one per image")
        if len(images) != len(questions):
            raise InvalidInput(f"{len(images)} images but {len(questions)} questions")
        cleaned = [clean_text(question) for question in questions]
        if not all(cleaned):
            raise InvalidInput("cannot answer an empty question")
        return [Answer(done.text, done.score) for done in self._ask_each(images, cleaned)]

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        self._require("ground")
        return self._boxes(images, phrase_lists(images, phrases))

    def detect(self, images: Sequence[Image.Image], vocabulary: Sequence[str]) -> list[list[Box]]:
        """Every label of the vocabulary grounded as a phrase (these models have no
        detection head to score labels against each other)."""
        self._require("detect")
        labels = unique_texts(vocabulary, "label")
        return self._boxes(images, [labels] * len(images))

    def caption_prompt(self, detail: CaptionDetail) -> str:
        return CAPTION_PROMPTS[detail]

    def ground_prompt(self, phrase: str) -> str:
        return (
            f'Locate every "{phrase}" in the image, and output the bbox coordinates in JSON format.'
        )

    # -- requests --------------------------------------------------------------------------

    def _require(self, tool: Tool) -> None:
        if not self.serves(tool):
            raise ToolNotServed(self.unserved_reason(tool))

    def _ask_each(
        self, images: Sequence[Image.Image], prompts: Sequence[str], max_tokens: int = 0
    ) -> list[Completion]:
        sent = self._send_all(images)
        limit = max_tokens or self.options.max_new_tokens
        return self._map(
            lambda pair: self._client().complete(_content(pair[0], pair[1]), limit),
            list(zip(sent, prompts, strict=True)),
        )

    def _boxes(self, images: Sequence[Image.Image], texts: list[list[str]]) -> list[list[Box]]:
        from mmrag.models.grounding.selection import rank_interleaved

        sent = self._send_all(images)
        pairs = [(index, text) for index, group in enumerate(texts) for text in group]
        limit = max(self.options.max_new_tokens, MIN_BOX_TOKENS)
        answers = self._map(
            lambda pair: self._client().complete(
                _content(sent[pair[0]], self.ground_prompt(clean_text(pair[1]))), limit
            ),
            pairs,
        )
        found: list[list[list[Box]]] = [[] for _ in images]
        for (index, phrase), done in zip(pairs, answers, strict=True):
            image = sent[index]
            boxes = read_boxes(done.text, self.target.box_format, image.size, image.original)
            score = done.score if done.score is not None else 0.0
            found[index].append([Box(phrase, score, box) for box in boxes])
        return [rank_interleaved(per_phrase, self.options.max_boxes) for per_phrase in found]

    def _send_all(self, images: Sequence[Image.Image]) -> list[SentImage]:
        self.load()
        engine = self.engine
        return [
            prepare_image(
                image,
                self.target.patch_multiple,
                engine.min_image_pixels,
                engine.max_image_pixels,
                engine.image_format,
            )
            for image in images
        ]

    def _map(self, function: Callable[[T], Completion], items: list[T]) -> list[Completion]:
        """``function`` over ``items`` with up to ``max_in_flight`` requests at once (shared by
        every batch of this model in the process), in order; the first failure is raised."""
        if self._pool is None:
            raise RuntimeError("engine adapter used before load()")
        return list(self._pool.map(function, items))

    def _client(self) -> EngineClient:
        if self.client is None:
            raise RuntimeError("engine adapter used before load()")
        return self.client


class EngineGroundingVlm(EngineVlm):
    """A chat VLM that also writes boxes (Qwen-VL): captions, answers, grounding."""

    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "vqa", "ground", "detect"})


class EngineFlorence2(EngineVlm):
    """Florence-2 on an engine: task tokens for prompts, no free-form questions."""

    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "ground", "detect"})

    def caption_prompt(self, detail: CaptionDetail) -> str:
        return FLORENCE_CAPTION_TASKS[detail]

    def ground_prompt(self, phrase: str) -> str:
        return FLORENCE_GROUND_TASK + phrase


def engine_adapter(spec: ModelSpec, options: VisionOptions) -> EngineVlm:
    """The adapter for the box format the spec's model writes."""
    match engine_target(spec).box_format:
        case "qwen2.5" | "grid1000":
            return EngineGroundingVlm(spec, options)
        case "florence":
            return EngineFlorence2(spec, options)
        case "none":
            return EngineVlm(spec, options)


def _content(image: SentImage, prompt: str) -> list[dict[str, Any]]:
    # Image first, then the text: the order the engines' chat templates expect for one image.
    return [
        {"type": "image_url", "image_url": {"url": image.data_url}},
        {"type": "text", "text": prompt},
    ]
