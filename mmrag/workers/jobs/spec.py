"""What a job is asked to do, typed and checked at submit time.

A spec names a source of images and the tasks to run on each. Everything that can be known
before any work starts is refused here with a clear message (an unknown task, an empty
source, a 10,000-label vocabulary); what can only be known per image (a URL that times out,
an archive member that is not an image) becomes that item's failure later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from mmrag.retrieval.filters import SearchFilter
from mmrag.workers.protocol import MAX_PHRASE_CHARS, MAX_PHRASES, MAX_QUESTION_CHARS

# One job holds at most this many items; larger sets are several jobs (item state is
# persisted per item, so this bounds the store, not the API's memory).
MAX_JOB_ITEMS = 100_000
MAX_QUESTIONS = 8

Phrase = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PHRASE_CHARS)
]
Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sources -------------------------------------------------------------------------------


class PathsSource(_Strict):
    """Files or directories on the server, under the allowed roots."""

    kind: Literal["paths"]
    paths: list[str] = Field(min_length=1, max_length=64)


class UrlsSource(_Strict):
    kind: Literal["urls"]
    urls: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(
        min_length=1, max_length=MAX_JOB_ITEMS
    )


class IndexedSource(_Strict):
    """Images already in the index, selected by a search filter (none: every image) or
    listed by id (the Slack bot's jobs: the images it just indexed for a workspace)."""

    kind: Literal["indexed"]
    filter: SearchFilter | None = None
    ids: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]] | None = Field(
        None, min_length=1, max_length=MAX_JOB_ITEMS
    )

    @model_validator(mode="after")
    def _filter_or_ids(self) -> IndexedSource:
        if self.filter is not None and self.ids is not None:
            raise ValueError("give a filter or ids, not both")
        return self


class ArchiveSource(_Strict):
    """A zip or tar uploaded with the job (the API fills ``path`` with where it was saved)."""

    kind: Literal["archive"]
    path: str = ""


JobSource = Annotated[
    PathsSource | UrlsSource | IndexedSource | ArchiveSource, Field(discriminator="kind")
]


# -- tasks ---------------------------------------------------------------------------------


class EmbedTask(_Strict):
    """Index the image (image vector, thumbnail): every new image gets it anyway."""

    task: Literal["embed"]


class CaptionTask(_Strict):
    task: Literal["caption"]
    detail: Literal["short", "detailed"] = "short"


class DetectTask(_Strict):
    """Open-vocabulary detection with a fixed vocabulary."""

    task: Literal["detect"]
    labels: list[Phrase] = Field(min_length=1, max_length=MAX_PHRASES)


class GroundTask(_Strict):
    task: Literal["ground"]
    phrases: list[Phrase] = Field(min_length=1, max_length=MAX_PHRASES)


class AskTask(_Strict):
    """The same questions answered for every image."""

    task: Literal["vqa"]
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)


class RegionsTask(_Strict):
    """Region vectors from the boxes the image already has (or a grid, if configured);
    listed after detect or ground, from the boxes those found."""

    task: Literal["regions"]


JobTask = Annotated[
    EmbedTask | CaptionTask | DetectTask | GroundTask | AskTask | RegionsTask,
    Field(discriminator="task"),
]
TaskName = Literal["embed", "caption", "detect", "ground", "vqa", "regions"]


class ModelChoice(_Strict):
    """Model specs for this job; empty: the configured ones (others must be allowed)."""

    vlm: str | None = None
    grounding: str | None = None


class JobOptions(_Strict):
    batch_size: int = Field(16, ge=1, le=256)
    priority: int = Field(5, ge=0, le=9, description="higher runs first")
    max_attempts: int = Field(3, ge=1, le=10)
    models: ModelChoice = ModelChoice()
    # Told when the job ends (a signed POST of its status; see workers/jobs/webhook.py).
    webhook: Annotated[str, StringConstraints(max_length=2048)] | None = None


class JobSpec(_Strict):
    source: JobSource
    tasks: list[JobTask] = Field(min_length=1, max_length=8)
    options: JobOptions = JobOptions()

    @field_validator("tasks")
    @classmethod
    def _one_of_each(cls, tasks: list[JobTask]) -> list[JobTask]:
        names = [task.task for task in tasks]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"task {', '.join(repeated)} given twice: merge its arguments")
        return tasks

    def task_names(self) -> list[TaskName]:
        return [task.task for task in self.tasks]
