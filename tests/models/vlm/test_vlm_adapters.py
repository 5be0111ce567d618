"""Every generative VLM family through the registry, on tiny random-weight checkpoints:
structure (one output per input, scores in range, batching, tools), not answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from models.vlm.tiny_vlms import BUILDERS
from PIL import Image

from mmrag.errors import InvalidInput
from mmrag.models.base import Tool
from mmrag.models.vision import ToolNotServed, VisionModel
from mmrag.models.vlm.blip import BlipAnswerer, BlipCaptioner
from mmrag.models.vlm.blip2 import Blip2Adapter, InstructBlipAdapter
from mmrag.models.vlm.generative import GenerativeVlm
from mmrag.models.vlm.glm4v import Glm4vAdapter
from mmrag.models.vlm.internvl import InternVlAdapter
from mmrag.models.vlm.llava import LlavaAdapter, LlavaNextAdapter
from mmrag.models.vlm.qwen_vl import QwenVlAdapter

BOTH: frozenset[Tool] = frozenset({"caption", "vqa"})
EXPECTED: dict[str, tuple[type[VisionModel], frozenset[Tool]]] = {
    "blip-captioning": (BlipCaptioner, frozenset({"caption"})),
    "blip-vqa": (BlipAnswerer, frozenset({"vqa"})),
    "blip-2": (Blip2Adapter, BOTH),
    "instructblip": (InstructBlipAdapter, BOTH),
    "llava-plain": (LlavaAdapter, BOTH),
    "llava-chat": (LlavaAdapter, BOTH),
    "llava-next": (LlavaNextAdapter, BOTH),
    "qwen2-vl": (QwenVlAdapter, BOTH),
    "qwen2.5-vl": (QwenVlAdapter, BOTH),
    "qwen3-vl": (QwenVlAdapter, BOTH),
    "internvl": (InternVlAdapter, BOTH),
    "glm4v": (Glm4vAdapter, BOTH),
}
FAMILIES = sorted(BUILDERS)
Adapters = Callable[[str], GenerativeVlm]
# transformers' GLM-4V processor builds its token types with np.array over a torch tensor.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def images() -> list[Image.Image]:
    """Three images of different sizes, shapes and modes (grey and RGBA are converted)."""
    return [
        Image.new("RGB", (40, 30), "red"),
        Image.new("L", (17, 90), 128),
        Image.new("RGBA", (64, 64), (0, 0, 255, 255)),
    ]


QUESTIONS = ["What colour is it?", "  How many shapes?  ", "Where is the square?"]


def test_every_family_has_a_tiny_checkpoint() -> None:
    assert set(EXPECTED) == set(BUILDERS)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_registry_picks_the_family_adapter(tiny_vlm: Adapters, name: str) -> None:
    adapter_class, tools = EXPECTED[name]
    model = tiny_vlm(name)
    assert type(model) is adapter_class
    assert model.tools == tools
    assert model.loaded


@pytest.mark.parametrize("name", FAMILIES)
def test_caption_gives_one_text_per_image_or_is_not_served(tiny_vlm: Adapters, name: str) -> None:
    model = tiny_vlm(name)
    if not model.serves("caption"):
        with pytest.raises(ToolNotServed, match="does not serve caption"):
            model.caption(images())
        return
    for detail in ("short", "detailed"):
        captions = model.caption(images(), detail)
        assert len(captions) == 3
        assert all(isinstance(caption, str) for caption in captions)
        assert captions == [caption.strip() for caption in captions]


@pytest.mark.parametrize("name", FAMILIES)
def test_answer_gives_one_scored_answer_per_question_or_is_not_served(
    tiny_vlm: Adapters, name: str
) -> None:
    model = tiny_vlm(name)
    if not model.serves("vqa"):
        with pytest.raises(ToolNotServed, match="does not serve vqa"):
            model.answer(images(), QUESTIONS)
        return
    answers = model.answer(images(), QUESTIONS)
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer.text, str)
        if answer.text:
            assert answer.score is not None
            assert 0.0 <= answer.score <= 1.0
        else:
            assert answer.score is None


def _prompts(model: GenerativeVlm) -> list[str | None]:
    """A prompt per test image: the questions for a VQA model, else the caption instruction
    (None for captioners that take no prompt)."""
    if model.serves("vqa"):
        return [model.question_prompt(question.strip()) for question in QUESTIONS]
    return [model.caption_prompt("short")] * len(QUESTIONS)


def _batch(prompts: list[str | None]) -> list[str] | None:
    texts = [prompt for prompt in prompts if prompt is not None]
    return texts if len(texts) == len(prompts) else None


@pytest.mark.parametrize("name", FAMILIES)
def test_a_batch_generates_as_each_image_alone(tiny_vlm: Adapters, name: str) -> None:
    """Padding must not change an output: prompts of different lengths pad on the side the
    model reads them from (the left for decoder-only language models)."""
    model = tiny_vlm(name)
    prompts = _prompts(model)
    together = model.generate(images(), _batch(prompts))
    alone = [
        model.generate([image], _batch([prompt]))[0]
        for image, prompt in zip(images(), prompts, strict=True)
    ]
    assert [g.text for g in together] == [g.text for g in alone]
    for batched, single in zip(together, alone, strict=True):
        if batched.score is None or single.score is None:
            assert batched.score == single.score
        else:
            assert batched.score == pytest.approx(single.score, abs=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_tools_no_vlm_serves_raise(tiny_vlm: Adapters, name: str) -> None:
    model = tiny_vlm(name)
    with pytest.raises(ToolNotServed):
        model.ground(images(), [["a red circle"]] * 3)
    with pytest.raises(ToolNotServed):
        model.detect(images(), ["circle"])
    with pytest.raises(ToolNotServed):
        model.ocr(images())


@pytest.mark.parametrize("name", ["llava-plain", "qwen2.5-vl", "blip-captioning"])
def test_generation_is_deterministic(tiny_vlm: Adapters, name: str) -> None:
    model = tiny_vlm(name)
    prompts = ["Describe this image.", "What is it?", "Which colour?"]
    assert model.generate(images(), prompts) == model.generate(images(), prompts)


def test_an_empty_batch_runs_nothing(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    assert model.caption([]) == []
    assert model.answer([], []) == []


def test_questions_must_match_images_one_to_one(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    with pytest.raises(InvalidInput, match="2 images but 1 questions"):
        model.answer(images()[:2], ["What colour?"])
    with pytest.raises(InvalidInput, match="list of questions"):
        model.answer(images()[:1], "What colour?")


def test_an_empty_question_is_refused(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("qwen2-vl")
    with pytest.raises(InvalidInput, match="empty question"):
        model.answer(images()[:1], ["   "])
