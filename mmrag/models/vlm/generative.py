"""What every generative VLM adapter shares: captioning and VQA by greedy text generation.

One batch is one processor call, one ``generate`` and one decode:

- :meth:`GenerativeVlm.preprocess` turns images (RGB PIL) and prompts into the processor's
  tensors, on the model's device and dtype;
- :meth:`GenerativeVlm._forward` runs ``generate`` greedily (deterministic) and keeps the raw
  logits of every step;
- :meth:`GenerativeVlm.postprocess` decodes only the generated tokens and scores them.

Families differ in how a prompt is written (a chat template, a plain format, no prompt at all),
which side pads, which token stops generation and how large an image may grow; those are the
hooks subclasses override.

Precision: bf16 on CUDA (fp16 where the GPU has no bf16), fp32 on CPU (bf16 matmuls are many
times slower on CPUs without AVX-512 bf16).

A score is the mean probability the model gave each generated token (up to and including the
token that stopped it), from the raw logits: how sure the model was of its own answer. It is
``None`` where nothing was generated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image

from mmrag.errors import InvalidInput, ModelUnavailable
from mmrag.models.base import Tool
from mmrag.models.transformers_base import TransformersAdapter, rgb, token_ids
from mmrag.models.vision import Answer, CaptionDetail
from mmrag.models.vlm.prompts import CAPTION_PROMPTS

log = logging.getLogger(__name__)

PaddingSide = Literal["left", "right"]

# Visual tokens one image may become in the dynamic-resolution families (Qwen-VL, GLM-4V):
# about 900 x 900 px for Qwen2/2.5-VL (28 px a token), 1024 x 1024 for Qwen3-VL (32 px). Their
# own defaults allow 12.8 M (Qwen2.5-VL) to 24 M pixels, more memory than one request should take.
MAX_IMAGE_TOKENS = 1024

# Reasoning checkpoints (GLM-4.1V-Thinking, Qwen3-VL-Thinking) think before they answer, and
# GLM wraps the answer in tags; the caller wants the answer only.
THINK_END = "</think>"
THINK_START = "<think>"
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


@dataclass(frozen=True)
class Generated:
    text: str
    score: float | None


class GenerativeVlm(TransformersAdapter):
    """Base of the captioning / VQA adapters built on transformers' ``generate``."""

    tools: ClassVar[frozenset[Tool]] = frozenset({"caption", "vqa"})

    # -- loading ---------------------------------------------------------------------------

    def _cuda_dtype(self) -> Any:
        import torch

        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _load_model(self, directory: Path, dtype: Any) -> Any:
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(directory, dtype=dtype)

    def _padding_side(self, model: Any) -> PaddingSide:
        """Decoder-only language models continue from the last position: prompts pad on the
        left so every row's last token is its own."""
        return "left"

    def _prepare(self, processor: Any, model: Any) -> None:
        processor.tokenizer.padding_side = self._padding_side(model)
        self._configure(processor, model)

    def _configure(self, processor: Any, model: Any) -> None:
        """Family settings applied once at load (image size bounds, checks)."""

    # -- tools -----------------------------------------------------------------------------

    def caption(self, images: Sequence[Image.Image], detail: CaptionDetail = "short") -> list[str]:
        self._require("caption")
        prompt = self.caption_prompt(detail)
        prompts = None if prompt is None else [prompt] * len(images)
        return [generated.text for generated in self.generate(images, prompts)]

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Answer]:
        self._require("vqa")
        if isinstance(questions, str):  # a bare string is a sequence of one-letter questions
            raise InvalidInput("answer takes a list of questions, one per image")
        if len(images) != len(questions):
            raise InvalidInput(f"{len(images)} images but {len(questions)} questions")
        self.load()
        prompts = [self.question_prompt(self._clean_question(question)) for question in questions]
        return [Answer(g.text, g.score) for g in self.generate(images, prompts)]

    def caption_prompt(self, detail: CaptionDetail) -> str | None:
        """The instruction for a caption; ``None`` for models that caption with no prompt."""
        return CAPTION_PROMPTS[detail]

    def question_prompt(self, question: str) -> str:
        return question

    def _clean_question(self, question: str) -> str:
        """The question trimmed, with the tokenizer's control tokens taken out: a question
        carrying ``<image>`` would otherwise claim a second image and fail the whole batch."""
        cleaned = question
        for token in self._control_tokens():
            cleaned = cleaned.replace(token, " ")
        cleaned = " ".join(cleaned.split())
        if not cleaned:
            raise InvalidInput("cannot answer an empty question")
        return cleaned

    def _control_tokens(self) -> list[str]:
        tokenizer = self.processor.tokenizer
        tokens = set(tokenizer.all_special_tokens)
        tokens.update(str(t) for t in tokenizer.added_tokens_decoder.values() if t.special)
        for name in ("image_token", "video_token"):
            value = getattr(self.processor, name, None)
            if value:
                tokens.add(str(value))
        # Longest first, so that no token is cut through by a shorter one it contains.
        return sorted((token for token in tokens if token), key=len, reverse=True)

    # -- one batch -------------------------------------------------------------------------

    def generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str] | None
    ) -> list[Generated]:
        """Generate for each image, after its prompt (``None``: no prompt for any)."""
        if prompts is not None and len(prompts) != len(images):
            raise InvalidInput(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return []
        self.load()
        output = self._forward(self.preprocess(images, prompts))
        return self.postprocess(output.sequences, output.logits)

    def preprocess(self, images: Sequence[Image.Image], prompts: Sequence[str] | None) -> Any:
        """The processor's tensors for a batch, on the model's device (floats in its dtype)."""
        texts = None if prompts is None else [self.format_prompt(prompt) for prompt in prompts]
        inputs = self.processor(
            images=rgb(images),
            text=texts,
            return_tensors="pt",
            padding=True,
            **self._processor_kwargs(),
        )
        return inputs.to(self.device, dtype=self.dtype)

    def format_prompt(self, prompt: str) -> str:
        """The model's input text for one image and one instruction: the chat template's."""
        conversation = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        text = self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def _processor_kwargs(self) -> dict[str, Any]:
        return {}

    def _forward(self, inputs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model.generate(
                **inputs,
                max_new_tokens=self.options.max_new_tokens,
                do_sample=False,
                num_beams=1,
                # A checkpoint's own sampling settings do not apply to greedy decoding.
                temperature=None,
                top_p=None,
                top_k=None,
                return_dict_in_generate=True,
                output_logits=True,
            )

    def postprocess(self, sequences: Any, logits: Sequence[Any]) -> list[Generated]:
        """Decode and score the generated tokens: the last ``len(logits)`` of each row (what
        comes before them, the prompt or a start token, differs by family)."""
        import torch

        steps = len(logits)
        if steps == 0:
            return [Generated("", None) for _ in range(sequences.shape[0])]
        tokens = sequences[:, -steps:]
        chosen = torch.stack(
            [
                torch.softmax(step.float(), dim=-1).gather(1, tokens[:, index : index + 1])[:, 0]
                for index, step in enumerate(logits)
            ],
            dim=1,
        )
        lengths = generated_lengths(tokens, self._stop_token_ids())
        results = []
        for row, length in enumerate(lengths):
            kept = tokens[row, :length]
            text = self.processor.tokenizer.decode(kept, skip_special_tokens=True)
            text = self.clean_text(text)
            score = float(chosen[row, :length].mean()) if text and length else None
            results.append(Generated(text, score))
        return results

    def _stop_token_ids(self) -> set[int]:
        return token_ids(self.model.generation_config.eos_token_id)

    def clean_text(self, text: str) -> str:
        """The answer alone: a reasoning model's thinking and answer tags removed, trimmed.

        Thinking that the token budget cut off leaves no answer (an empty text)."""
        if THINK_END in text:  # some templates open the thinking in the prompt: no start tag
            text = text.rsplit(THINK_END, 1)[1]
        elif THINK_START in text:
            text = text.split(THINK_START, 1)[0]
        answer = _ANSWER.search(text)
        if answer is not None:
            text = answer.group(1)
        return text.strip()


def generated_lengths(tokens: Any, stop_ids: set[int]) -> list[int]:
    """For each row of generated tokens, how many count: up to and including the first stop
    token. What ``generate`` writes after it is padding for rows that finished early."""
    lengths = []
    for row in tokens.tolist():
        length = len(row)
        for index, token in enumerate(row):
            if token in stop_ids:
                length = index + 1
                break
        lengths.append(length)
    return lengths


def bound_image_tokens(image_processor: Any, max_tokens: int, frames: int = 1) -> int:
    """Cap a dynamic-resolution image processor (Qwen-VL, GLM-4V: its ``size`` is a pixel range,
    at most ``longest_edge`` pixels) at ``max_tokens`` visual tokens per image, so that a huge
    image is resized down instead of becoming tens of thousands of tokens. One token covers a
    ``patch_size * merge_size`` square; ``frames`` is how many frames the pixel count includes
    (GLM-4V counts an image as its temporal patch). Returns the pixel cap."""
    side = int(image_processor.patch_size) * int(image_processor.merge_size)
    max_pixels = max_tokens * side * side * frames
    current = image_processor.size.get("longest_edge")
    if current is None or current > max_pixels:
        image_processor.size["longest_edge"] = max_pixels
    return int(image_processor.size["longest_edge"])


class ChatVlm(GenerativeVlm):
    """A family whose prompt format lives only in the checkpoint's chat template."""

    def _configure(self, processor: Any, model: Any) -> None:
        if not processor.chat_template:
            raise ModelUnavailable(
                f"{self.spec}: the processor has no chat template, and {type(model).__name__} "
                "has no other prompt format to fall back on"
            )
