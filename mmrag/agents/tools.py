"""The one shared tool list: names, descriptions and argument schemas, and plans over them.

Plans never carry image ids. A step says which images it runs on (``on``): the caller's
image, the hits of this plan's retrieve step, or the previous turn's results (``pick`` one
of them by rank). So neither a planner nor text inside a question can point a tool at an
image the caller did not give or find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmrag.errors import InvalidInput
from mmrag.retrieval.filters import SearchFilter

AgentTool = Literal["retrieve", "caption", "vqa", "ground", "detect", "count", "start_job"]
AGENT_TOOLS: tuple[AgentTool, ...] = get_args(AgentTool)
# The tools the local planner routes questions to; start_job only comes from the LLM planner.
ROUTED_TOOLS: tuple[AgentTool, ...] = AGENT_TOOLS[:-1]
# "last": the images the step before kept, in its order (a count's ranking cut to its
# ``top``, a VQA step's matches): result sets as values, so steps chain over each other.
Target = Literal["image", "hits", "previous", "last"]

MAX_TEXT_CHARS = 300
MAX_PHRASES = 8


class InvalidPlan(InvalidInput):
    """A plan that names an unknown tool, has bad arguments or cannot run as ordered."""

    title = "Invalid plan"


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clean_text(value: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("is blank")
    return cleaned


def _clean_phrases(value: list[str]) -> list[str]:
    return list(dict.fromkeys(_clean_text(phrase) for phrase in value))


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_clean_text)]
Phrases = Annotated[
    list[Annotated[str, Field(max_length=MAX_TEXT_CHARS)]],
    Field(min_length=1, max_length=MAX_PHRASES),
    AfterValidator(_clean_phrases),
]


class RetrieveArgs(ToolArgs):
    query: Text | None = None
    like: Literal["image"] | None = Field(
        None, description='"image": find images like the given one, instead of a text query'
    )
    limit: int | None = Field(None, ge=1, le=50)
    match: Literal["image", "hybrid"] | None = Field(
        None,
        description='"hybrid": image vectors and the words of the captions (BM25) together; '
        '"image": image vectors only. Unset: the agent\'s default',
    )
    filter: SearchFilter | None = Field(
        None, description="restrict the search: counts of detected objects, source, labels"
    )

    @model_validator(mode="after")
    def _one_query(self) -> RetrieveArgs:
        if (self.query is None) == (self.like is None):
            raise ValueError("give either query or like")
        return self

    @property
    def described(self) -> str:
        """What was searched for, for the answer's words."""
        return repr(self.query) if self.query is not None else "images like the given one"


class OnImages(ToolArgs):
    on: Target = "hits"
    pick: int | None = Field(None, ge=1, le=50, description="1-based rank among the images")


class CaptionArgs(OnImages):
    detail: Literal["short", "detailed"] = "short"


class VqaArgs(OnImages):
    question: Text
    keep: Literal["yes", "no"] | None = Field(
        None, description='keep only the images whose answer is this ("which ones are empty?")'
    )


class GroundArgs(OnImages):
    phrases: Phrases


class DetectArgs(OnImages):
    labels: Phrases


class CountArgs(OnImages):
    phrase: Text
    rank: Literal["none", "most", "fewest"] = "none"
    top: int | None = Field(
        None, ge=1, le=50, description="keep only this many images, best ranked first"
    )


class StartJobArgs(ToolArgs):
    """A bulk job over the retrieved images, proposed to the user: it starts only once they
    confirm in the same thread (a LangGraph interrupt)."""

    on: Literal["hits"] = "hits"
    task: Literal["caption", "detect"]
    labels: Phrases | None = Field(None, description="what to detect (detect only)")

    @model_validator(mode="after")
    def _labels_for_detect(self) -> StartJobArgs:
        if (self.task == "detect") != (self.labels is not None):
            raise ValueError("labels go with detect, and only with it")
        return self


@dataclass(frozen=True)
class ToolSpec:
    name: AgentTool
    description: str
    args: type[ToolArgs]

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry of this tool."""
        parameters = self.args.model_json_schema()
        parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("retrieve", "Search the indexed images by a text description.", RetrieveArgs),
    ToolSpec("caption", "Describe images in words.", CaptionArgs),
    ToolSpec("vqa", "Answer a question about each image.", VqaArgs),
    ToolSpec("ground", "Find where the phrases are in each image (boxes).", GroundArgs),
    ToolSpec("detect", "Detect all objects of the given labels in each image.", DetectArgs),
    ToolSpec(
        "count",
        "Count a kind of object in each image; rank picks the image with most or fewest.",
        CountArgs,
    ),
    ToolSpec(
        "start_job",
        "Propose a bulk job (caption or detect) over the retrieved images, such as 'caption "
        "every photo from the dock'. It starts only after the user confirms.",
        StartJobArgs,
    ),
)
TOOL_SPECS: dict[AgentTool, ToolSpec] = {spec.name: spec for spec in TOOLS}
assert tuple(TOOL_SPECS) == AGENT_TOOLS


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: AgentTool
    args: dict[str, Any]

    def parsed(self) -> ToolArgs:
        return TOOL_SPECS[self.tool].args.model_validate(self.args)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[Step]
    planner: str  # which planner made it (local, llm, or llm->local after a fallback)

    @property
    def shape(self) -> str:
        """The tools in order, ``retrieve>vqa``: what the routing set labels."""
        return ">".join(step.tool for step in self.steps)


@dataclass(frozen=True)
class PlanContext:
    """What a plan may refer to besides its own steps."""

    has_image: bool
    previous: int = 0  # how many results the previous turn left
    max_steps: int = 4


def validate_plan(raw_steps: Any, planner: str, context: PlanContext) -> Plan:
    """A :class:`Plan` from untrusted steps, or :class:`InvalidPlan` saying what is wrong.

    Each step's arguments are checked against its tool's schema and written back in their
    normal form; every ``on`` must name images that exist when the step runs.
    """
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidPlan("a plan needs at least one step")
    if len(raw_steps) > context.max_steps:
        raise InvalidPlan(f"a plan has at most {context.max_steps} steps")
    steps: list[Step] = []
    retrieved = False
    for number, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict):
            raise InvalidPlan(f"step {number} is not an object")
        tool = raw.get("tool")
        if tool not in TOOL_SPECS:
            raise InvalidPlan(f"step {number}: unknown tool {str(tool)[:40]!r}")
        try:
            parsed = TOOL_SPECS[tool].args.model_validate(raw.get("args", {}))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "args"
            raise InvalidPlan(f"step {number} ({tool}): {where}: {first['msg']}") from None
        if isinstance(parsed, OnImages):
            _check_target(number, tool, parsed, retrieved, context)
        if isinstance(parsed, StartJobArgs):
            if not retrieved:
                raise InvalidPlan(f"step {number} (start_job) needs a retrieve step before it")
            if number != len(raw_steps):
                raise InvalidPlan(f"step {number} (start_job) must be the last step")
        if isinstance(parsed, RetrieveArgs) and parsed.like and not context.has_image:
            raise InvalidPlan(
                f"step {number} (retrieve) searches like the given image, but none was given"
            )
        retrieved = retrieved or tool == "retrieve"
        steps.append(Step(tool=tool, args=parsed.model_dump(exclude_none=True, mode="json")))
    return Plan(steps=steps, planner=planner)


def _check_target(
    number: int, tool: str, args: OnImages, retrieved: bool, context: PlanContext
) -> None:
    where = f"step {number} ({tool})"
    if args.on == "image" and not context.has_image:
        raise InvalidPlan(f"{where} runs on the given image, but no image was given")
    if args.on == "last" and number == 1:
        raise InvalidPlan(f"{where} runs on the previous step's images, but it is the first step")
    if args.on == "hits" and not retrieved:
        raise InvalidPlan(f"{where} runs on retrieved images, but no retrieve step comes first")
    if args.on == "previous":
        if not context.previous:
            raise InvalidPlan(f"{where} refers to earlier results, but there are none")
        if args.pick is not None and args.pick > context.previous:
            raise InvalidPlan(f"{where}: there are only {context.previous} earlier results")
