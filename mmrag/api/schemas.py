"""Request and response bodies of the REST API (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from mmrag.api.path_ids import HEX_ID_PATTERN
from mmrag.retrieval.filters import SearchFilter, not_a_bool
from mmrag.retrieval.items import METADATA_KEY_PATTERN
from mmrag.retrieval.search import SearchTarget
from mmrag.retrieval.store import Hit
from mmrag.workers.protocol import MAX_PHRASE_CHARS, MAX_PHRASES, MAX_QUESTION_CHARS, BoxOutput

ImageId = str
IMAGE_ID_PATTERN = HEX_ID_PATTERN
# Text that must say something: not empty, not only spaces.
NOT_BLANK = r"\S"
Integer = Annotated[int, BeforeValidator(not_a_bool)]
Phrase = Annotated[str, Field(min_length=1, max_length=MAX_PHRASE_CHARS, pattern=NOT_BLANK)]


def image_links(image_id: str) -> dict[str, str]:
    """Where a client fetches an image's bytes and its thumbnail."""
    return {
        "content_url": f"/v1/images/{image_id}/content",
        "thumbnail_url": f"/v1/images/{image_id}/thumbnail",
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourcePublic(BaseModel):
    kind: str
    uri: str


class StoredBox(BoxOutput):
    """A box a grounding or detection run found, as written back into the index."""

    model: str = ""


class StoredRegion(BaseModel):
    """A crop of the image stored as one of its region vectors."""

    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in pixels")
    label: str = Field(description='what the box was found as ("grid" for a grid crop)')
    score: float = Field(description="the detector's score of the box")


class ImagePublic(BaseModel):
    """An indexed image as callers see it."""

    id: ImageId
    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    created: datetime
    source: SourcePublic
    caption: str = ""
    captions: list[str] = []
    labels: list[str] = []
    # What grounding and detection runs found (pixels of the original) and how many of each
    # asked label: the web page draws them over the image.
    boxes: list[StoredBox] = []
    counts: dict[str, int] = {}
    # The crops stored as its region vectors (boxes above the score floor, or a grid).
    regions: list[StoredRegion] = []
    metadata: dict[str, Any] = {}
    content_url: str
    thumbnail_url: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ImagePublic:
        image_id = payload["id"]
        return cls.model_validate(
            {
                **payload,
                **image_links(image_id),
            }
        )


class ImageCreated(BaseModel):
    id: ImageId
    sha256: str
    width: int
    height: int
    created: datetime
    duplicate: bool = Field(description="the same bytes were already indexed; nothing changed")


class IngestFailure(BaseModel):
    source: str
    status: int
    title: str
    detail: str


class ImagesCreated(BaseModel):
    items: list[ImageCreated]
    failed: list[IngestFailure] = []


class ImageList(BaseModel):
    items: list[ImagePublic]
    total: int
    limit: int
    offset: int


def _metadata_field() -> Any:
    return Field(
        None,
        description="a JSON object for every image; keys are 1 to 64 ASCII letters, digits, _ or -",
        json_schema_extra={"propertyNames": {"pattern": METADATA_KEY_PATTERN}},
    )


class FromUrlsRequest(_Strict):
    urls: list[str] = Field(min_length=1)
    captions: list[str | None] | None = None
    metadata: dict[str, Any] | None = _metadata_field()


class FromPathsRequest(_Strict):
    paths: list[Annotated[str, Field(pattern="^/", description="absolute")]] = Field(
        min_length=1, max_length=64
    )
    metadata: dict[str, Any] | None = _metadata_field()


def _given(field: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"type": "string"}}}


class SearchRequest(_Strict):
    """Exactly one of ``text``, ``image_id`` or ``image_b64``; hybrid search needs text."""

    # The rules above, for clients: a field set to null counts as left out.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [_given("text"), _given("image_id"), _given("image_b64")],
            "if": {"required": ["target"], "properties": {"target": {"const": "hybrid"}}},
            "then": _given("text"),
        },
    )

    text: str | None = Field(None, min_length=1, pattern=NOT_BLANK, examples=["a red circle"])
    image_id: ImageId | None = Field(None, pattern=IMAGE_ID_PATTERN)
    image_b64: str | None = Field(
        None,
        min_length=4,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="an image's bytes, base64",
    )
    target: SearchTarget = SearchTarget.IMAGE
    limit: Integer = Field(10, ge=1)
    offset: Integer = Field(0, ge=0)
    filter: SearchFilter | None = None


class RegionMatch(StoredRegion):
    """The crop of the image that matched a region query best."""

    match: float = Field(description="cosine similarity of the query and the crop")


class SearchResult(BaseModel):
    id: ImageId
    score: float
    caption: str
    labels: list[str]
    width: int
    height: int
    metadata: dict[str, Any]
    source: SourcePublic
    thumbnail_url: str
    content_url: str
    region: RegionMatch | None = Field(
        None, description="target region, or hybrid through its region arm: the crop matched"
    )

    @classmethod
    def from_hit(cls, hit: Hit) -> SearchResult:
        payload = hit.payload
        return cls(
            id=hit.image_id,
            score=hit.score,
            region=RegionMatch.model_validate(hit.region) if hit.region else None,
            caption=payload.get("caption", ""),
            labels=payload.get("labels", []),
            width=payload.get("width", 0),
            height=payload.get("height", 0),
            metadata=payload.get("metadata", {}),
            source=SourcePublic.model_validate(payload.get("source", {"kind": "", "uri": ""})),
            **image_links(hit.image_id),
        )


class SearchResponse(BaseModel):
    results: list[SearchResult]
    target: SearchTarget
    limit: int
    offset: int
    took_ms: float
    encode_ms: float


class FixtureBuild(BaseModel):
    """A fixture model being trained in the background (a fresh machine's first run)."""

    state: Literal["queued", "building", "ready", "failed"]
    progress: float = Field(ge=0, le=1, description="fraction of training steps done")
    eta_s: float | None = Field(None, description="seconds left, from the rate so far")
    detail: str


class Embedding(BaseModel):
    """What computes the CLIP vectors, and why it was picked."""

    backend: Literal["torch", "onnxruntime", "openvino"]
    precision: Literal["fp32", "fp16", "bf16", "int8"]
    reason: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
    # The embedder's backend and precision once it is loaded (null before).
    embedding: Embedding | None = None
    # Whether each model tool can run now ("ok", "building", or why not); informational,
    # search is ready without them.
    tools: dict[str, str] = {}
    # The fixture models this process has built or is building, by name.
    builds: dict[str, FixtureBuild] = {}


# -- tools on one image -----------------------------------------------------------------

ModelChoice = Field(
    None, max_length=300, description="a served model spec; default: the configured one"
)


class OneImageRequest(_Strict):
    """An indexed image by id; with a multipart upload (``file``) the id is left out."""

    image_id: ImageId | None = Field(None, pattern=IMAGE_ID_PATTERN)
    model: str | None = ModelChoice


class CaptionRequest(OneImageRequest):
    detail: Literal["short", "detailed"] = "short"


class VqaRequest(OneImageRequest):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)


class GroundRequest(OneImageRequest):
    phrases: list[Phrase] = Field(min_length=1, max_length=MAX_PHRASES)


class DetectRequest(OneImageRequest):
    labels: list[Phrase] = Field(min_length=1, max_length=MAX_PHRASES)


class _ToolResponse(BaseModel):
    image_id: ImageId
    model: str
    took_ms: float


class CaptionResponse(_ToolResponse):
    caption: str


class VqaResponse(_ToolResponse):
    answer: str
    score: float | None = None


class BoxesResponse(_ToolResponse):
    boxes: list[BoxOutput]
    width: int
    height: int
    counts: dict[str, int] = Field(description="boxes found per asked phrase or label")


# -- the agent ---------------------------------------------------------------------------


class PlanBody(_Strict):
    # The agent checks the question (blank, over agent.max_question_chars) with its own
    # messages; the schema states the same rules for clients (the limit from settings).
    question: str = Field(json_schema_extra={"minLength": 1, "pattern": NOT_BLANK})
    image_id: ImageId | None = Field(None, pattern=IMAGE_ID_PATTERN)
    thread_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")


class AskBody(PlanBody):
    stream: StrictBool = False  # JSON true or false only: "yes" is refused, not read as true
    confirm: StrictBool | None = Field(
        None,
        description="answer the job this thread's last turn proposed (`pending`): true starts "
        "it (needs the jobs scope), false drops it; needs thread_id",
    )


class PlanStep(BaseModel):
    tool: str
    args: dict[str, Any]


class PlanResponse(BaseModel):
    steps: list[PlanStep]
    planner: str


class AskCitation(BaseModel):
    image_id: str
    box: list[float] | None = None
    score: float | None = None
    label: str | None = None


class AskResponse(BaseModel):
    answer: str
    citations: list[AskCitation]
    weak_evidence: bool
    plan: PlanResponse
    trace: list[dict[str, Any]]
    thread_id: str
    took_ms: float
    pending: dict[str, Any] | None = Field(
        None, description="a job the agent proposes, waiting for confirm in this thread"
    )
