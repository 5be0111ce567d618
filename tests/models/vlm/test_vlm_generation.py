"""The shared generation machinery piece by piece: prompts, preprocessing, scoring, decoding."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from PIL import Image

from mmrag.errors import InvalidInput
from mmrag.models.torch_setup import ensure_torchvision
from mmrag.models.transformers_base import token_ids
from mmrag.models.vlm.generative import (
    MAX_IMAGE_TOKENS,
    GenerativeVlm,
    bound_image_tokens,
    generated_lengths,
)
from mmrag.models.vlm.prompts import CAPTION_PROMPTS, LLAVA_PLAIN_TEMPLATE

Adapters = Callable[[str], GenerativeVlm]
# transformers' GLM-4V processor builds its token types with np.array over a torch tensor.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


# -- prompts ----------------------------------------------------------------------------------


def test_llava_without_a_chat_template_uses_the_plain_llava_format(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    assert not model.processor.chat_template
    assert model.format_prompt("What colour?") == "USER: <image>\nWhat colour? ASSISTANT:"
    assert LLAVA_PLAIN_TEMPLATE.format(prompt="x") == "USER: <image>\nx ASSISTANT:"


def test_chat_families_use_the_checkpoints_chat_template(tiny_vlm: Adapters) -> None:
    # The tiny templates write "<role>: <parts>" and end with "assistant:".
    assert tiny_vlm("llava-chat").format_prompt("Hi?") == "user: <image>\nHi?\nassistant:"
    qwen = tiny_vlm("qwen2-vl").format_prompt("Hi?")
    assert qwen == "user: <|vision_start|><|image_pad|><|vision_end|>Hi?\nassistant:"


def test_captions_ask_the_shared_instructions_except_blip_and_blip2(tiny_vlm: Adapters) -> None:
    assert tiny_vlm("qwen3-vl").caption_prompt("detailed") == CAPTION_PROMPTS["detailed"]
    assert tiny_vlm("instructblip").caption_prompt("short") == CAPTION_PROMPTS["short"]
    # Not instruction-tuned: they caption from the image alone.
    assert tiny_vlm("blip-captioning").caption_prompt("detailed") is None
    assert tiny_vlm("blip-2").caption_prompt("short") is None


def test_blip2_asks_questions_in_its_training_format(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("blip-2")
    assert model.question_prompt("What colour?") == "Question: What colour? Answer:"
    assert model.format_prompt("Question: x Answer:") == "Question: x Answer:"
    assert tiny_vlm("instructblip").question_prompt("What colour?") == "What colour?"


def test_control_tokens_in_a_question_are_taken_out(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    assert model._clean_question("  What <image> colour</s>?  ") == "What colour ?"
    with pytest.raises(InvalidInput, match="empty question"):
        model._clean_question("<image><s>")
    # Otherwise the extra image token would fail the whole batch in the processor.
    answers = model.answer([Image.new("RGB", (20, 20))] * 2, ["<image> What?", "Which?"])
    assert len(answers) == 2


# -- preprocessing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "side"),
    [("llava-plain", "left"), ("qwen2.5-vl", "left"), ("blip-2", "left"), ("blip-vqa", "right")],
)
def test_prompts_pad_on_the_side_the_model_reads_from(
    tiny_vlm: Adapters, name: str, side: str
) -> None:
    model = tiny_vlm(name)
    assert model.processor.tokenizer.padding_side == side
    short, long = "Why?", "Where is the red circle next to the blue square?"
    mask = model.preprocess([Image.new("RGB", (20, 20))] * 2, [short, long])["attention_mask"]
    edge = -1 if side == "left" else 0
    assert bool(mask[:, edge].all())
    assert not bool(mask.all())  # the short prompt was padded


@pytest.mark.parametrize("name", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "glm4v"])
def test_mrope_families_get_multimodal_token_types(tiny_vlm: Adapters, name: str) -> None:
    model = tiny_vlm(name)
    inputs = model.preprocess([Image.new("RGB", (30, 20))], ["What?"])
    types = inputs["mm_token_type_ids"]
    image_positions = inputs["input_ids"] == model.model.config.image_token_id
    assert types.shape == inputs["input_ids"].shape
    assert bool(image_positions.any())
    assert bool((types == 1).eq(image_positions).all())


def test_images_become_rgb_and_floats_take_the_model_dtype(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-next")
    inputs = model.preprocess([Image.new("L", (50, 20)), Image.new("RGBA", (20, 50))], None)
    pixels = inputs["pixel_values"]
    assert pixels.dtype == model.dtype
    assert pixels.shape[-3] == 3


def test_dynamic_resolution_is_capped_in_visual_tokens() -> None:
    ensure_torchvision()
    from transformers import Glm4vImageProcessor, Qwen2VLImageProcessor

    qwen = Qwen2VLImageProcessor()  # defaults allow 1280 tokens of 28 px
    assert bound_image_tokens(qwen, MAX_IMAGE_TOKENS) == MAX_IMAGE_TOKENS * 28 * 28
    grid = qwen(Image.new("RGB", (3000, 2000)), return_tensors="pt")["image_grid_thw"][0]
    assert int(grid.prod()) // 4 <= MAX_IMAGE_TOKENS
    # A lower cap than ours is kept.
    qwen.size["longest_edge"] = 100 * 28 * 28
    assert bound_image_tokens(qwen, MAX_IMAGE_TOKENS) == 100 * 28 * 28

    glm = Glm4vImageProcessor()
    cap = bound_image_tokens(glm, MAX_IMAGE_TOKENS, frames=2)
    assert cap == MAX_IMAGE_TOKENS * 28 * 28 * 2
    grid = glm(Image.new("RGB", (3000, 2000)), return_tensors="pt")["image_grid_thw"][0]
    assert int(grid.prod()) // 4 <= MAX_IMAGE_TOKENS


# -- decoding and scoring ---------------------------------------------------------------------


def test_generated_lengths_stop_after_the_first_stop_token() -> None:
    tokens = torch.tensor([[5, 6, 2, 0], [2, 0, 0, 0], [5, 6, 7, 8], [5, 9, 6, 9]])
    assert generated_lengths(tokens, {2}) == [3, 1, 4, 4]
    assert generated_lengths(tokens, {2, 9}) == [3, 1, 4, 2]
    assert generated_lengths(tokens, set()) == [4, 4, 4, 4]


def test_token_ids_reads_every_shape_of_config_field() -> None:
    assert token_ids(None) == set()
    assert token_ids(7) == {7}
    assert token_ids([7, 8]) == {7, 8}


def _logits(vocab: int, chosen: list[list[int]], boosts: list[float]) -> tuple[torch.Tensor, ...]:
    """Per-step logits: at step ``t`` each row's chosen token gets ``boosts[t]``, others 0."""
    result = []
    for step, boost in enumerate(boosts):
        logits = torch.zeros(len(chosen), vocab)
        for row, tokens in enumerate(chosen):
            logits[row, tokens[step]] = boost
        result.append(logits)
    return tuple(result)


def test_score_is_the_mean_probability_of_the_tokens_up_to_the_stop(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    tokenizer = model.processor.tokenizer
    vocab = len(tokenizer)
    stop, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    word = tokenizer.encode(" circle", add_special_tokens=False)
    assert len(word) <= 2
    answered = [*word, stop, pad, pad, pad][:4]
    silent = [stop, pad, pad, pad]
    prompt = torch.full((2, 3), 7)  # what generate echoes before the new tokens
    sequences = torch.cat([prompt, torch.tensor([answered, silent])], dim=1)
    # The padding after the stop token gets the lowest probability: it must not count.
    boosts = [6.0, 3.0, 1.0, -9.0]
    generated = model.postprocess(sequences, _logits(vocab, [answered, silent], boosts))

    def probability(boost: float) -> float:
        return math.exp(boost) / (math.exp(boost) + vocab - 1)

    counted = answered.index(stop) + 1
    expected = sum(probability(boost) for boost in boosts[:counted]) / counted
    assert generated[0].text == "circle"
    assert generated[0].score == pytest.approx(expected, rel=1e-5)
    assert generated[1].text == ""
    assert generated[1].score is None


def test_no_generated_step_gives_empty_answers(tiny_vlm: Adapters) -> None:
    model = tiny_vlm("llava-plain")
    generated = model.postprocess(torch.zeros((2, 5), dtype=torch.long), ())
    assert [(g.text, g.score) for g in generated] == [("", None), ("", None)]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a red circle \n", "a red circle"),
        ("<think>two shapes, one red</think><answer>a red circle</answer>", "a red circle"),
        ("it is round</think>\n\na red circle", "a red circle"),  # the prompt opened it
        ("<think>still thinking when the budget ran out", ""),
        ("<answer>a red circle", "a red circle"),
    ],
)
def test_reasoning_is_taken_out_of_the_text(tiny_vlm: Adapters, raw: str, clean: str) -> None:
    assert tiny_vlm("glm4v").clean_text(raw) == clean
