"""What travels between the service and the workers: plain JSON, never pickles or pixels.

A task carries a list of items (one for an API call, a batch for bulk jobs). Each item
names its image by the SHA-256 of its original blob; the worker reads the bytes from the
shared blob store. Each item's result is either the tool's output or an error envelope
(``{"error": {"type": "NotFound", "detail": "..."}}``) for bad input, which is final: a
task retries only on transient failures, and one bad item never fails its batch.
"""

from __future__ import annotations

import re
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmrag import errors
from mmrag.errors import MmragError

ToolName = Literal["caption", "vqa", "ground", "detect"]
TOOL_NAMES: tuple[ToolName, ...] = get_args(ToolName)
QueueName = Literal["vlm", "grounding"]

# Which worker queue (which kind of model) serves each tool.
TOOL_QUEUES: dict[ToolName, QueueName] = {
    "caption": "vlm",
    "vqa": "vlm",
    "ground": "grounding",
    "detect": "grounding",
}
QUEUE_NAMES: tuple[QueueName, ...] = get_args(QueueName)


def parse_queues(text: str) -> list[QueueName]:
    """``"vlm,grounding"`` as queue names; unknown names raise :class:`InvalidInput`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if unknown or not names:
        raise errors.InvalidInput(
            f"unknown queue {', '.join(unknown) or '(none)'}: choose from {', '.join(QUEUE_NAMES)}"
        )
    return [cast(QueueName, name) for name in dict.fromkeys(names)]


_SHA256 = r"^[0-9a-f]{64}$"
MAX_QUESTION_CHARS = 1_000
MAX_PHRASES = 64
MAX_PHRASE_CHARS = 200


class ToolItem(BaseModel):
    """One image and what to do with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=_SHA256)
    detail: Literal["short", "detailed"] = "short"  # caption
    question: str | None = Field(None, min_length=1, max_length=MAX_QUESTION_CHARS)  # vqa
    phrases: tuple[str, ...] = Field((), max_length=MAX_PHRASES)  # ground, detect

    @field_validator("question")
    @classmethod
    def _question_has_words(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the question is blank")
        return value.strip() if value is not None else None

    @field_validator("phrases")
    @classmethod
    def _clean_phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(" ".join(phrase.split()) for phrase in value))
        for phrase in cleaned:
            if not phrase:
                raise ValueError("a phrase is blank")
            if len(phrase) > MAX_PHRASE_CHARS:
                raise ValueError(f"a phrase is over {MAX_PHRASE_CHARS} characters")
        return cleaned

    def check_for(self, tool: ToolName) -> None:
        """Raise :class:`InvalidInput` when the item lacks what ``tool`` needs."""
        if tool == "vqa" and self.question is None:
            raise errors.InvalidInput("vqa needs a question")
        if tool in ("ground", "detect") and not self.phrases:
            raise errors.InvalidInput(f"{tool} needs at least one phrase")


class ToolTask(BaseModel):
    """The body of one task message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: ToolName
    model: str  # the spec, resolved by the caller (settings default or an allowed choice)
    items: tuple[ToolItem, ...] = Field(min_length=1, max_length=1024)


ItemResult = dict[str, Any]


def error_result(error: MmragError) -> ItemResult:
    return {"error": {"type": type(error).__name__, "detail": error.detail}}


def raise_if_error(result: ItemResult) -> ItemResult:
    """The result itself, or the error it carries raised as the matching domain error."""
    envelope = result.get("error")
    if envelope is None:
        return result
    raise rebuild_error(str(envelope.get("type", "")), str(envelope.get("detail", "")))


def rebuild_error(type_name: str, detail: str) -> MmragError:
    """The domain error a worker reported, by class name; only classes of mmrag.errors."""
    if re.fullmatch(r"[A-Za-z]+", type_name):
        found = getattr(errors, type_name, None)
        if isinstance(found, type) and issubclass(found, MmragError):
            return found(detail)
    return MmragError(detail)


# -- what comes back, checked on arrival -------------------------------------------------


class CaptionOutput(BaseModel):
    caption: str


class AnswerOutput(BaseModel):
    answer: str
    score: float | None = None


class BoxOutput(BaseModel):
    label: str
    score: float
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")


class BoxesOutput(BaseModel):
    boxes: list[BoxOutput]
