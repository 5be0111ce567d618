"""Typed settings: one object, env prefix ``MMRAG_``, nested fields with ``__``.

``MMRAG_STORE__BACKEND=qdrant`` sets ``settings.store.backend``. Lists and objects take JSON
(``MMRAG_ALLOWED_ROOTS='["/srv/photos"]'``).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from mmrag.models.spec import Scheme

DEFAULT_SECRET = "change-me"


class Profile(StrEnum):
    """Which model set the service runs."""

    STANDARD = "standard"  # real checkpoints
    OFFLINE = "offline"  # fixture models trained on the synthetic world, no download


class StoreBackend(StrEnum):
    EDGE = "edge"  # qdrant-edge-py, in-process, on disk under the data dir
    QDRANT = "qdrant"  # a Qdrant server or cluster through qdrant-client


ModelRole = Literal["embedder", "vlm", "grounding"]

# The standard defaults, pinned to hub revisions (memory needs in the README's model table):
# Qwen2-VL-2B-Instruct captions and answers questions (about 4.5 GB in bf16, Apache-2.0);
# Grounding DINO tiny grounds phrases and detects open-vocabulary labels (about 0.7 GB).
PROFILE_MODELS: dict[Profile, dict[ModelRole, str]] = {
    Profile.STANDARD: {
        "embedder": "open_clip:ViT-B-32@laion2b_s34b_b79k",
        "vlm": "hf:Qwen/Qwen2-VL-2B-Instruct@895c3a49bc3fa70a340399125c650a463535e71c",
        "grounding": (
            "hf:IDEA-Research/grounding-dino-tiny@a2bb814dd30d776dcf7e30523b00659f4f141c71"
        ),
    },
    Profile.OFFLINE: {
        "embedder": "fixture:shapes-clip",
        "vlm": "fixture:shapes-vlm",
        "grounding": "fixture:shapes-grounding",
    },
}


def _checked_spec(text: str, schemes: tuple[Scheme, ...]) -> str:
    """The canonical form of a model spec, or a ValueError that names what is wrong with it.
    Imported lazily: settings load in every process, the model modules in few."""
    from mmrag.errors import UnknownModel
    from mmrag.models.spec import check_spec

    try:
        return str(check_spec(text, schemes))
    except UnknownModel as error:
        raise ValueError(error.detail) from None


class EngineSettings(BaseModel):
    """How ``openai:`` specs reach their engine (an OpenAI-compatible server: vLLM, SGLang,
    Ollama, ...); see mmrag/models/engine/options.py for what each bounds."""

    timeout_s: float = Field(60.0, gt=0, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0, le=60)
    max_in_flight: int = Field(8, ge=1, le=256)  # requests per worker process and model
    max_retries: int = Field(4, ge=0, le=20)  # on 429/502/503/504 and refused connections
    backoff_s: float = Field(0.5, ge=0, le=60)
    backoff_max_s: float = Field(30.0, ge=0, le=600)
    max_image_pixels: int = Field(1_003_520, ge=3_136, le=50_000_000)
    min_image_pixels: int = Field(3_136, ge=1, le=1_000_000)
    image_format: Literal["auto", "png", "jpeg"] = "auto"
    stream: bool = False
    logprobs: bool = True
    api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _ordered_bounds(self) -> EngineSettings:
        # Each pair passes its own bounds; crossed, images and retry waits make no sense.
        if self.min_image_pixels > self.max_image_pixels:
            raise ValueError(
                "models.engine.min_image_pixels must not exceed models.engine.max_image_pixels"
            )
        if self.backoff_s > self.backoff_max_s:
            raise ValueError("models.engine.backoff_s must not exceed models.engine.backoff_max_s")
        return self


class ModelSettings(BaseModel):
    """Model specs; an empty spec takes the profile's default."""

    embedder: str = ""
    vlm: str = ""  # captioning and VQA
    grounding: str = ""  # phrase grounding and open-vocabulary detection
    # Further vision specs a request may pick with "model"; nothing else is ever loaded.
    allowed: list[str] = []

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, value: str) -> str:
        from mmrag.models.spec import EMBEDDER_SCHEMES

        return _checked_spec(value, EMBEDDER_SCHEMES) if value else value

    @field_validator("vlm", "grounding")
    @classmethod
    def _known_vision_model(cls, value: str) -> str:
        from mmrag.models.spec import VISION_SCHEMES

        return _checked_spec(value, VISION_SCHEMES) if value else value

    @field_validator("allowed")
    @classmethod
    def _canonical_specs(cls, value: list[str]) -> list[str]:
        from mmrag.models.spec import VISION_SCHEMES

        return [_checked_spec(spec, VISION_SCHEMES) for spec in value]

    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int = Field(0, ge=0, le=256, description="0 = one per usable core")
    # The embedder's CPU runtime and precision (mmrag/models/clip/backends.py): auto picks per
    # CPU and proves the pick against torch fp32 at load; a pair this machine cannot run stops
    # the service at start.
    backend: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    batch_size: int = Field(32, ge=1, le=1024)
    # Generation cap of the vision-language model (captions and answers).
    max_new_tokens: int = Field(48, ge=1, le=2048)
    engine: EngineSettings = EngineSettings()
    # Downloaded checkpoints and trained fixture models. None: the libraries' own caches
    # (~/.cache/huggingface, ~/.cache/mmrag/fixtures or $MMRAG_FIXTURE_CACHE), shared by data dirs.
    cache_dir: Path | None = None

    @model_validator(mode="after")
    def _runnable_backend(self) -> ModelSettings:
        from mmrag.models.clip.backends import check_choice

        problem = check_choice(self.backend, self.precision)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def export_dir(self) -> Path | None:
        """Where the embedder's ONNX exports are cached (None: ~/.cache/mmrag/exports)."""
        return self.cache_dir / "exports" if self.cache_dir is not None else None


class HnswSettings(BaseModel):
    """When the edge engine builds its HNSW graph (it never does so by itself)."""

    enabled: bool = True
    # Below this many points a brute-force scan is as fast as the graph (measured: bench/).
    min_points: int = Field(10_000, ge=0)
    # Build once this many points arrived since the last build ...
    rebuild_after: int = Field(5_000, ge=1)
    # ... and the store has seen no write for this long.
    idle_seconds: float = Field(5.0, ge=0)
    # Writes that find this many points outside the graph wait for the build in flight. Every
    # unindexed point is held in RAM (a 512-d image: ~6 KB of vector slots, one per named
    # vector, plus its payload) and scanned by every search, and a fill of precomputed vectors
    # outruns the builds (bench/million.py --fill-while-building).
    max_unindexed: int = Field(100_000, ge=1_000, le=10_000_000)
    # ... for at most this long; then the write fails as retryable (503).
    max_unindexed_wait_s: float = Field(1_800.0, gt=0, le=86_400)
    # Builds made while a large collection fills leave several graphs (the engine caps a
    # segment's size); once writes have stopped for this long, one build merges them.
    merge_after_idle_s: float = Field(120.0, ge=0)
    m: int = Field(16, ge=4, le=128)
    ef_construct: int = Field(100, ge=8, le=1000)
    ef_search: int = Field(128, ge=8, le=4096)
    # The candidate list of a search whose filter walks with ACORN (a field without per-value
    # graphs, see FILTER_GRAPH_FIELDS): each of its steps scores the neighbours' neighbours
    # too, so it needs far fewer candidates for the same recall. At a million (bench/million,
    # width >= 1600, ~14 %): ef 512: p50 32 ms, recall@10 1.0; 64: 14 ms, 0.9935; 16: 10 ms,
    # 0.93. Most of its cost is the two-hop steps, not the list.
    acorn_ef_search: int = Field(64, ge=8, le=4096)
    # Links per node of the extra graphs the engine builds for each value of an indexed
    # keyword field (for filtered search); None: as many as ``m``; 0: none are built.
    payload_m: int | None = Field(None, ge=0, le=128)

    def ef_for(self, acorn: bool) -> int:
        """The candidate list of a search; ``acorn``: its filter walks with ACORN."""
        return self.acorn_ef_search if acorn else self.ef_search

    @model_validator(mode="after")
    def _limit_above_the_forced_build(self) -> HnswSettings:
        from mmrag.retrieval.indexing import FORCE_FACTOR

        # Below it no build would be running when writes reach the limit: nothing would wait.
        if self.max_unindexed <= FORCE_FACTOR * self.rebuild_after:
            raise ValueError(
                f"store.hnsw.max_unindexed ({self.max_unindexed}) must exceed {FORCE_FACTOR} x "
                f"store.hnsw.rebuild_after ({self.rebuild_after}), where a build is forced"
            )
        return self

    @model_validator(mode="after")
    def _ef_covers_m(self) -> HnswSettings:
        # A candidate list shorter than a node's links cannot fill them: a worse graph, no faster.
        if self.ef_construct < self.m:
            raise ValueError(
                f"store.hnsw.ef_construct ({self.ef_construct}) must be at least store.hnsw.m "
                f"({self.m})"
            )
        return self


class StoreSettings(BaseModel):
    backend: StoreBackend = StoreBackend.EDGE
    url: str | None = None  # qdrant backend: http(s)://host:6333, or ":memory:" for tests
    api_key: SecretStr | None = None
    collection: str = Field("mmrag_images", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    hnsw: HnswSettings = HnswSettings()
    # Edge store: int8 copies of the dense vectors (a quarter of the bytes, kept in RAM) serve
    # the HNSW search, and the full vectors rescore ``oversampling`` x the limit. Set when a
    # collection is created; an existing one keeps the setting it was made with.
    quantization: Literal["none", "int8"] = "none"
    oversampling: float = Field(2.0, ge=1, le=16)
    # Edge store: the full vectors stay in their files, read through the page cache when a
    # search touches them, instead of being held in RAM. With int8 the searches walk the int8
    # copies (in RAM) and read only the rescored candidates' full vectors: what keeps a
    # million images' 4 GB of float vectors out of the process (bench/million.py).
    on_disk_vectors: bool = False
    # Edge store with int8: the int8 copies held in the process's heap (true), or read through
    # the page cache from their files (false). False opens a store without reading them in
    # (300k: reopen 7.6 -> 1.7 s), and a build's swap shares them with the live shard instead
    # of holding both in the heap; searches pay page-table walks (300k: p50 2.4 -> 3.1 ms).
    quantized_in_ram: bool = True
    # Edge store on Linux: once a shard is loaded, its large in-heap regions (the int8 copies
    # held in RAM) are collapsed onto 2 MiB pages in the background (retrieval/huge_pages.py).
    huge_pages: bool = True

    @model_validator(mode="after")
    def _edge_only_settings(self) -> StoreSettings:
        # The qdrant backend never reads them: refused rather than silently ignored.
        if self.backend != StoreBackend.EDGE:
            if self.quantization != "none":
                raise ValueError(
                    "store.quantization is the edge store's; set it to none for qdrant"
                )
            if self.on_disk_vectors:
                raise ValueError(
                    "store.on_disk_vectors is the edge store's; set it to false for qdrant"
                )
            if not self.quantized_in_ram:
                raise ValueError(
                    "store.quantized_in_ram is the edge store's; set it to true for qdrant"
                )
        if not self.quantized_in_ram and self.quantization == "none":
            raise ValueError(
                "store.quantized_in_ram is about the int8 copies; set store.quantization to int8"
            )
        return self


class LimitSettings(BaseModel):
    """Bounds on everything a caller can send."""

    max_image_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1024)  # a 50-megapixel image is refused
    # Longer side over shorter side. The embedder scales the shorter side up to its input
    # size, so a 1 x 40,000 sliver (within the pixel limit) would become gigabytes.
    max_aspect_ratio: float = Field(64.0, ge=1)
    max_upload_files: int = Field(64, ge=1)
    max_request_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    max_caption_chars: int = Field(2_000, ge=1)
    max_metadata_bytes: int = Field(16 * 1024, ge=2)
    # Every JSON body and JSON form field (retrieval/json_bounds.py): parsers recurse per level.
    max_json_depth: int = Field(32, ge=4, le=512)
    max_json_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_urls: int = Field(64, ge=1)
    # Images one synchronous request may ingest (a server folder); bulk work belongs in jobs.
    max_request_images: int = Field(1_000, ge=1)
    url_timeout_s: float = Field(15.0, gt=0, le=300)
    url_max_redirects: int = Field(3, ge=0, le=10)
    search_max_limit: int = Field(200, ge=1)
    search_max_offset: int = Field(10_000, ge=0)
    thumbnail_px: int = Field(256, ge=16, le=2048)

    @model_validator(mode="after")
    def _json_within_the_request(self) -> LimitSettings:
        # The JSON guard (api/json_body_guard.py) buffers a body up to max_json_bytes before
        # the request-size cap counts it: a larger bound would buffer past that cap.
        if self.max_json_bytes > self.max_request_bytes:
            raise ValueError(
                f"limits.max_json_bytes ({self.max_json_bytes}) must not exceed "
                f"limits.max_request_bytes ({self.max_request_bytes})"
            )
        return self


class ApiKey(BaseModel):
    """An API key as stored in settings: only its SHA-256, never the key itself."""

    # No ":": a key's name owns its agent conversations, and Slack workspaces own theirs as
    # "slack:<team>"; a key named like one must not read that workspace's threads.
    # No "/" either: "acme/bob" would own tenant acme's key bob's threads.
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: set[Literal["read", "write", "admin"]] = {"read"}

    @field_validator("name")
    @classmethod
    def _not_anonymous(cls, value: str) -> str:
        # The caller with auth off (tenancy/keys.py ANONYMOUS_NAME), whose threads are unowned.
        if value == "anonymous":
            raise ValueError("an API key may not be named 'anonymous'")
        return value


class AuthSettings(BaseModel):
    """API-key auth; off while no key is configured."""

    api_keys: list[ApiKey] = []

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys)

    def find(self, presented_key: str) -> ApiKey | None:
        digest = hashlib.sha256(presented_key.encode()).hexdigest()
        return next((key for key in self.api_keys if key.sha256 == digest), None)


class TenancySettings(BaseModel):
    """Per-key rates and per-tenant quotas (api/limits.py). Generous defaults: they stop a
    runaway client, not ordinary use. Absurd values (zero, negative, past the bounds) stop
    the server at start."""

    search_per_s: float = Field(50.0, gt=0, le=100_000)  # /v1/search, per key
    ask_per_s: float = Field(5.0, gt=0, le=10_000)  # /v1/ask and /v1/plan, per key
    concurrent_jobs: int = Field(8, ge=1, le=1_000)  # unfinished jobs, per tenant
    images_per_day: int = Field(100_000, ge=1, le=10**9)  # new images, per key, UTC day
    max_images: int = Field(1_000_000, ge=1, le=10**10)  # per tenant
    max_bytes: int = Field(1024**4, ge=1024**2, le=2**50)  # original bytes, per tenant


class SampleSettings(BaseModel):
    enabled: bool = True  # index the sample gallery on first start
    shapes: int = Field(24, ge=0, le=1000)


class WorkerSettings(BaseModel):
    """Where model work runs: in this process (embedded) or on Celery workers (distributed)."""

    mode: Literal["embedded", "celery"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = ""  # empty: the broker URL
    # Limit on one task: at 90% of it the worker stops waiting for the task's forward passes
    # and answers its unfinished items as unavailable (a running pass cannot be stopped).
    task_time_limit_s: float = Field(600.0, gt=0, le=24 * 3600)
    # Redis hands an unacknowledged task to another worker after this long. It must exceed
    # the longest task plus the longest retry wait (a retried task waits in its worker,
    # unacknowledged), or a task would run twice at once.
    visibility_timeout_s: float = Field(1800.0, gt=0)
    # How long the API waits for a tool's result before answering 503.
    result_wait_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(3, ge=0, le=20)  # transient errors only; bad input never retries
    retry_backoff_max_s: float = Field(60.0, gt=0)
    # Micro-batching: requests that arrive within the window run as one forward pass.
    batch_max: int = Field(16, ge=1, le=256)
    batch_window_ms: float = Field(10.0, ge=0, le=1000)
    # Distributed mode: the API merges tasks of one tool and model that wait together (for
    # the same window) into one task of up to this many items, so a burst of single-image
    # requests pays one trip through Redis per batch, not per image. 1: every request alone.
    send_batch_max: int = Field(16, ge=1, le=1024)
    # Merged tasks of one tool and model out at once from one API process: at least the
    # number of workers serving that queue, or some of them idle.
    send_in_flight: int = Field(4, ge=1, le=64)
    # Threads per worker process: tasks in flight at once, the batcher's source of batches.
    concurrency: int = Field(16, ge=1, le=256)
    idle_unload_s: float = Field(900.0, ge=0)  # 0: keep models loaded
    memory_budget_mb: int = Field(0, ge=0)  # 0: no budget; else least recently used unload
    heartbeat_s: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _visibility_outlasts_tasks(self) -> WorkerSettings:
        if self.visibility_timeout_s <= self.task_time_limit_s + self.retry_backoff_max_s:
            raise ValueError(
                "workers.visibility_timeout_s must exceed workers.task_time_limit_s plus "
                "workers.retry_backoff_max_s"
            )
        return self

    @property
    def backend_url(self) -> str:
        return self.result_backend or self.broker_url


class AgentSettings(BaseModel):
    """The question-answering agent: which planner, and the bounds on one question."""

    planner: Literal["local", "llm"] = "local"
    # After each step the agent looks at what came back and may revise the rest of the plan
    # (agents/adapt.py), and it searches image vectors and caption words together. False:
    # the fixed plan of the first generation, kept to compare against.
    adaptive: bool = True
    # "llm": the adaptive agent's answer rephrased by the llm_url endpoint (agents/
    # llm_composer.py), checked against the trace; "rules": the sentences as written.
    composer: Literal["rules", "llm"] = "rules"
    # An OpenAI-compatible chat endpoint with tool calling (vLLM, Ollama, a hosted API).
    llm_url: str = "http://127.0.0.1:11434/v1"
    llm_model: str = "qwen2.5:7b-instruct"
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(20.0, gt=0, le=300)
    max_question_chars: int = Field(2_000, ge=1, le=100_000)
    max_steps: int = Field(4, ge=1, le=16)
    # Calls of tools on single images (retrieve counts one); each hit a step runs on is one.
    max_tool_calls: int = Field(32, ge=1, le=1_000)
    max_seconds: float = Field(120.0, gt=0, le=3_600)
    # Images sent to a tool at once; the time limit is checked between such batches.
    tool_batch: int = Field(8, ge=1, le=64)
    retrieve_limit: int = Field(5, ge=1, le=50)
    # Adaptive: a search whose hits are ranked by a count ("which photo has the most cars?")
    # looks at this many, since the one with the most need not look most like the words.
    rank_retrieve_limit: int = Field(20, ge=1, le=50)
    # Below these scores the answer says the evidence is weak instead of claiming anything.
    # CLIP cosine similarities of a text and a matching image sit around 0.2-0.35.
    min_retrieve_score: float = Field(0.15, ge=-1, le=1)
    min_box_score: float = Field(0.2, ge=0, le=1)
    # A VQA answer's score is the mean probability of its tokens: below this it is given as
    # the model's unsure guess, not as a finding.
    min_answer_score: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="after")
    def _ranked_search_looks_further(self) -> AgentSettings:
        # A ranked search looking at fewer hits than a plain one would defeat its purpose.
        if self.rank_retrieve_limit < self.retrieve_limit:
            raise ValueError("agent.rank_retrieve_limit must be at least agent.retrieve_limit")
        return self


class JobSettings(BaseModel):
    """Bulk annotation jobs: how they run, and bounds on what they take."""

    # Batches in flight at once, over all jobs: enough to keep the workers' micro-batchers
    # fed while the driver ingests the next batch.
    concurrency: int = Field(2, ge=1, le=64)
    # Per-item retries wait min(retry_backoff_s * 2**attempt, retry_backoff_max_s).
    retry_backoff_s: float = Field(2.0, ge=0)
    retry_backoff_max_s: float = Field(60.0, ge=0)
    # No worker or no broker: the items wait min(outage_backoff_s * 2**outages,
    # outage_backoff_max_s) and spend no attempt, however long the outage lasts.
    outage_backoff_s: float = Field(5.0, ge=0)
    outage_backoff_max_s: float = Field(300.0, ge=0)
    poll_s: float = Field(0.5, gt=0, le=10)  # the driver's wake-up interval when idle
    # A claimed batch is held this long past its driver's last renewal (every lease_s / 3):
    # the items of a driver that died are claimed again after at most this.
    lease_s: float = Field(30.0, gt=0)
    # Archives: refused at submit time past these (zip bombs, a flood of empty members).
    max_archive_members: int = Field(10_000, ge=1)
    max_archive_total_bytes: int = Field(4 * 1024**3, ge=1024)
    max_member_ratio: float = Field(200.0, ge=1)  # uncompressed over compressed, per member
    # Signs job webhooks; unset, a key derived from secret_key (see workers/jobs/webhook.py),
    # so receivers never hold the secret that signs the service's other tokens.
    webhook_secret: SecretStr | None = None


class SlackSettings(BaseModel):
    """The Slack bot. It is on once a signing secret and either a bot token (one workspace) or
    an OAuth client (any workspace that installs it) are set; half a configuration is refused
    at start, not at the first event."""

    signing_secret: SecretStr | None = None
    bot_token: SecretStr | None = None  # xoxb-...: the single workspace's bot
    app_token: SecretStr | None = None  # xapp-...: Socket Mode (`mmrag slack`)
    client_id: str | None = None  # the OAuth install flow, for many workspaces
    client_secret: SecretStr | None = None
    # Where OAuth installations (bot tokens) and states live: unset, SQLite in the data dir;
    # a redis:// URL when several API processes serve the same app.
    installations_url: SecretStr | None = None
    # The Web API base URL: tests and Enterprise Grid proxies point it elsewhere.
    api_url: str = Field("https://slack.com/api/", pattern=r"^https?://")
    # Hosts the bot downloads shared files from (with its token): Slack's own and no other.
    file_hosts: list[str] = ["files.slack.com", "files-edu.slack.com", "files-gov.slack.com"]
    max_file_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # Results shown as uploaded thumbnails, and images uploaded with boxes drawn, per answer.
    max_images: int = Field(4, ge=0, le=10)
    # Questions and jobs run at once on the bot's own threads (the ack never waits on them).
    workers: int = Field(4, ge=1, le=64)
    # Progress posts of a bulk job started from Slack come at most this often.
    job_progress_s: float = Field(30.0, gt=0)
    # The API's address as people reach it, for the export links of jobs; unset, the links
    # are paths only.
    public_url: str | None = Field(None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _complete(self) -> SlackSettings:
        for name in ("signing_secret", "bot_token", "app_token", "client_secret"):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and not secret.get_secret_value().strip():
                raise ValueError(f"slack: MMRAG_SLACK__{name.upper()} is set but empty")
        has_client = self.client_id is not None or self.client_secret is not None
        if has_client and (self.client_id is None or self.client_secret is None):
            raise ValueError("slack: set both MMRAG_SLACK__CLIENT_ID and __CLIENT_SECRET")
        if (self.bot_token is not None or has_client) and self.signing_secret is None:
            raise ValueError("slack: MMRAG_SLACK__SIGNING_SECRET is required with a token")
        if self.signing_secret is not None and not (self.bot_token is not None or has_client):
            raise ValueError("slack: set MMRAG_SLACK__BOT_TOKEN (one workspace) or an OAuth client")
        return self

    @property
    def enabled(self) -> bool:
        return self.signing_secret is not None

    @property
    def oauth(self) -> bool:
        return self.client_id is not None


class RegionSettings(BaseModel):
    """Region vectors: CLIP embeddings of crops of an image, searched with MaxSim."""

    enabled: bool = True  # detection and grounding runs also index their boxes' crops
    min_score: float = Field(0.2, ge=0, le=1)  # boxes below this detector score are not cropped
    margin: float = Field(0.15, ge=0, le=1)  # context around a box, as a fraction of its side
    max_per_image: int = Field(32, ge=1, le=256)  # the best-scoring boxes, when there are more
    min_side_px: int = Field(2, ge=1, le=256)  # smaller crops say nothing and are skipped
    # 0: off. N: images without boxes get an N x N grid of crops, so region search works
    # before any detection ran (N*N more vectors an image).
    grid: int = Field(0, ge=0, le=8)
    # Weight of the region arm in hybrid fusion (dense image and BM25 weigh 1); 0: no arm.
    fusion_weight: float = Field(2.0, ge=0, le=10)
    # Hybrid's region arm holds only images whose best crop has at least this cosine with the
    # query: with regions on a few images, crops of other things would otherwise rank there.
    min_match: float = Field(0.2, ge=-1, le=1)
    # The agent's retrieve takes region hits whose crop's cosine with the query is at least
    # this, and cites such a crop's box without a grounding call when it was found as the
    # phrase grounded. A cosine scale is the embedder's own: tune it with the model.
    strong_match: float = Field(0.3, ge=-1, le=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MMRAG_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    profile: Profile = Profile.STANDARD
    # Server-side paths that ingest may read; nothing outside them, after resolving symlinks.
    allowed_roots: list[Path] = []
    # Signs outgoing webhooks and other server-made tokens.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: ModelSettings = ModelSettings()
    store: StoreSettings = StoreSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    samples: SampleSettings = SampleSettings()
    tenancy: TenancySettings = TenancySettings()
    workers: WorkerSettings = WorkerSettings()
    agent: AgentSettings = AgentSettings()
    jobs: JobSettings = JobSettings()
    slack: SlackSettings = SlackSettings()
    regions: RegionSettings = RegionSettings()

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("allowed_roots")
    @classmethod
    def _resolve_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser().resolve() for root in value]

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment != "development":
            if self.secret_key.get_secret_value() == DEFAULT_SECRET:
                raise ValueError("MMRAG_SECRET_KEY must be set outside development")
            if not self.auth.enabled:
                raise ValueError("MMRAG_AUTH__API_KEYS must hold a key outside development")
        return self

    @property
    def embedder_spec(self) -> str:
        return self.model_spec("embedder")

    def served_vision_specs(self) -> set[str]:
        """The vision models a request may name: the configured ones and ``models.allowed``.
        Nothing else is ever loaded, whoever writes the task message."""
        return {self.model_spec("vlm"), self.model_spec("grounding"), *self.models.allowed}

    def model_spec(self, role: ModelRole) -> str:
        """The spec configured for ``role``, else the profile's default."""
        configured: str = getattr(self.models, role)
        return configured or PROFILE_MODELS[self.profile][role]

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def conversations_path(self) -> Path:
        return self.data_dir / "conversations.sqlite"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def slack_dir(self) -> Path:
        return self.data_dir / "slack"
