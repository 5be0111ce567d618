"""The ``mmrag`` command line (Typer + Rich). Errors end as one plain line and exit code 1."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mmrag.config import Settings
from mmrag.errors import InvalidInput, MmragError
from mmrag.retrieval.items import IngestReport
from mmrag.retrieval.tenants import DEFAULT_TENANT

if TYPE_CHECKING:
    from mmrag.evaluation.runner import ModelResult
    from mmrag.models.vision import VisionOptions
    from mmrag.services import Services

app = typer.Typer(help="mmrag: search and question your images.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

ERROR_EXIT = 1


@app.callback()
def main() -> None:
    """mmrag: search and question your images."""
    # OpenMP threads that spin while waiting collapse throughput when cores are shared
    # (measured: bench/embed_throughput.py). It only takes effect before torch loads, and
    # no command imports torch before this runs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise MmragError(f"invalid setting {where}: {first['msg']}") from error


def _configure_logging(settings: Settings, quiet: bool) -> None:
    # Rich on a terminal; plain one-line records when stderr is a file or a pipe (services
    # under a supervisor, workers in containers), where wrapped columns would split records.
    handler: logging.Handler
    if errors.is_terminal:
        handler = RichHandler(console=errors, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s")
        )
    # Libraries (open_clip logs every config it parses at INFO) speak up only for warnings.
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    # One-shot commands keep the terminal for their progress bar and results.
    logging.getLogger("mmrag").setLevel("WARNING" if quiet else settings.log_level.upper())


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Domain errors become one plain line on stderr; nothing else of them is printed."""
    try:
        yield
    except MmragError as error:
        # soft_wrap: one line whatever the terminal's width, so scripts can read it.
        errors.print(f"error: {error.detail}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(ERROR_EXIT) from None


def _run(work: Callable[[Settings], T], quiet: bool = True) -> T:
    with _one_line_errors():
        settings = _settings()
        _configure_logging(settings, quiet)
        return work(settings)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Run the API and search service (embedded mode: store and models in this process)."""

    def work(settings: Settings) -> None:
        import uvicorn

        from mmrag.api.app import create_app

        _check_engines(settings)
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None)

    _run(work, quiet=False)


def _check_engines(settings: Settings) -> None:
    """An engine-served model whose engine is down or serves another model stops the start
    with one line, not the first request."""
    from mmrag.models.engine.probe import check_engines
    from mmrag.workers.executor import engine_options

    check_engines(settings.served_vision_specs(), engine_options(settings.models.engine))


@app.command()
def slack() -> None:
    """Run the Slack bot over Socket Mode (no public URL needed; MMRAG_SLACK__APP_TOKEN)."""

    def work(settings: Settings) -> None:
        from mmrag.slack.socket_mode import run_socket_mode

        run_socket_mode(settings)

    _run(work, quiet=False)


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="comma-separated queues to consume: vlm, grounding")
    ] = "vlm,grounding",
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=256, help="tasks in flight (threads)")
    ] = None,
    hostname: Annotated[str | None, typer.Option(help="worker name (default mmrag@host)")] = None,
    preload: Annotated[bool, typer.Option(help="load the queues' models before taking tasks")] = (
        False
    ),
) -> None:
    """Run a Celery worker for the distributed mode (one per GPU; needs Redis)."""

    def work(settings: Settings) -> None:
        from mmrag.workers.protocol import parse_queues
        from mmrag.workers.worker import run_worker

        _check_engines(settings)
        code = run_worker(settings, parse_queues(queues), concurrency, hostname, preload)
        if code:
            raise typer.Exit(code)

    _run(work, quiet=False)


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="image files or directories (recursive)")],
) -> None:
    """Index images from files and directories, with a progress bar and a summary."""

    def work(settings: Settings) -> None:
        from mmrag.retrieval.items import items_from_paths
        from mmrag.retrieval.sources import ServerPaths
        from mmrag.services import Services

        targets = [path.expanduser().absolute() for path in paths]
        # Paths typed on this command line are the caller's own choice, so with no roots
        # configured they are the roots. Links that lead out of them are still refused.
        roots = settings.allowed_roots or [target.resolve() for target in targets]
        items = items_from_paths(ServerPaths(roots, settings.limits), targets)
        if not items:
            raise InvalidInput("no image files under the given paths")
        services = Services.open(settings)
        try:
            with _progress() as progress:
                task = progress.add_task("indexing", total=len(items))
                report = services.ingest(items, _reporter(progress, task, "indexed"))
        finally:
            services.close()
        _print_report(report)
        if report.failed and not report.indexed and not report.duplicates:
            raise typer.Exit(ERROR_EXIT)

    _run(work)


@app.command()
def search(
    text: Annotated[str | None, typer.Argument(help="what to look for")] = None,
    image: Annotated[Path | None, typer.Option(help="search by this image file instead")] = None,
    target: Annotated[str, typer.Option(help="image | caption | hybrid | region")] = "image",
    limit: Annotated[int, typer.Option(min=1)] = 10,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help='JSON filter, e.g. {"labels":{"any":["cat"]}}')
    ] = None,
) -> None:
    """Search the index by text or by an image file."""

    def work(settings: Settings) -> None:
        from mmrag.retrieval.filters import SearchFilter
        from mmrag.retrieval.search import SearchQuery, SearchTarget
        from mmrag.retrieval.store import Filter
        from mmrag.services import Services

        if (text is None) == (image is None):
            raise InvalidInput("give a search text or --image FILE, not both")
        try:
            chosen = SearchTarget(target)
        except ValueError:
            names = ", ".join(choice.value for choice in SearchTarget)
            raise InvalidInput(f"unknown target {target!r}: use one of {names}") from None
        store_filter = Filter()
        if filter_json:
            try:
                store_filter = SearchFilter.model_validate_json(filter_json).to_store_filter()
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise InvalidInput(f"bad --filter {where}: {first['msg']}") from None
        services = Services.open(settings)
        try:
            query_image = None
            if image is not None:
                query_image = services.decode_query_image(_read_file(image, settings))
            # The default tenant's images: the API's without keys, and the CLI's own.
            found = services.scoped(DEFAULT_TENANT).search.search(
                SearchQuery(
                    text=text, image=query_image, target=chosen, limit=limit, filter=store_filter
                )
            )
        finally:
            services.close()
        table = Table(title=f"{len(found.hits)} results")
        regional = any(hit.region for hit in found.hits)
        for column in ("score", "id", "caption", "source", *(["region"] if regional else [])):
            table.add_column(column, overflow="fold")
        for hit in found.hits:
            source = hit.payload.get("source", {})
            row = [f"{hit.score:.3f}", hit.image_id, hit.payload.get("caption", "")]
            row.append(source.get("uri", ""))
            if regional:
                region = hit.region or {}
                where = ", ".join(f"{v:.0f}" for v in region.get("box", []))
                row.append(f"{region['label']} [{where}]" if region else "")
            table.add_row(*row)
        console.print(table)

    _run(work)


@app.command()
def stats() -> None:
    """What the index holds."""

    def work(settings: Settings) -> None:
        from mmrag.services import Services, data_dir_size, last_serving

        services = Services.open(settings)
        try:
            info = services.store.info()
        finally:
            services.close()
        table = Table("what", "value", title="mmrag")
        table.add_row("images", str(info.points))
        table.add_row("vectors in HNSW", str(info.indexed_vectors))
        table.add_row("store backend", info.backend)
        table.add_row("embedder", settings.embedder_spec)
        serving = last_serving(settings.data_dir)
        configured = f"{settings.models.backend}/{settings.models.precision}"
        table.add_row(
            "embedding backend",
            f"{serving.get('backend')}/{serving.get('precision')} at {serving.get('recorded')}: "
            f"{serving.get('reason')}"
            if serving
            else f"not loaded yet (configured {configured})",
        )
        table.add_row("vision-language model", settings.model_spec("vlm"))
        table.add_row("grounding model", settings.model_spec("grounding"))
        table.add_row("model work", settings.workers.mode)
        table.add_row("data dir", str(settings.data_dir))
        table.add_row("data dir bytes", f"{data_dir_size(settings.data_dir):,}")
        console.print(table)

    _run(work)


@app.command()
def reindex(
    embedder: Annotated[
        str, typer.Option(help="the embedder spec to re-embed the collection with")
    ],
    grace_s: Annotated[
        float, typer.Option(min=0, help="seconds the old version is kept after the switch")
    ] = 60.0,
) -> None:
    """Re-embed the collection with another embedder into a new version, then switch to it.

    Interrupted (Ctrl-C, a kill), it resumes where it stopped when run again. Afterwards set
    MMRAG_MODELS__EMBEDDER to the same spec."""

    def work(settings: Settings) -> None:
        from mmrag.models.spec import EMBEDDER_SCHEMES, check_spec
        from mmrag.services import Services

        spec = str(check_spec(embedder, EMBEDDER_SCHEMES))
        services = Services.open(settings)
        try:
            with _progress() as progress:
                task = progress.add_task(f"re-embedding with {spec}", total=None)
                advance = _reporter(progress, task, "re-embedded")
                counts = services.reindex(spec, progress=advance, grace_s=grace_s)
        finally:
            services.close()
        console.print(
            f"re-indexed with {spec}: {counts.copied} re-embedded, {counts.skipped} from an "
            f"earlier run, {counts.failed} left out (original unreadable), {counts.removed} "
            f"removed; set MMRAG_MODELS__EMBEDDER={spec}",
            highlight=False,
            soft_wrap=True,
        )

    _run(work)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="what to ask about your images")],
    image: Annotated[Path | None, typer.Option(help="an image file the question is about")] = None,
    thread: Annotated[
        str | None, typer.Option(help="conversation id: later questions can refer to earlier")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole result as JSON")] = (
        False
    ),
) -> None:
    """Ask the agent: it plans over the tools, runs them and answers with citations."""

    def work(settings: Settings) -> None:
        from mmrag.services import Services

        services = Services.open(settings)
        try:
            agent = services.agent()
            agent.check(question, None, thread, DEFAULT_TENANT)  # before the image is indexed
            image_id = _index_file(services, image) if image is not None else None
            result = agent.ask(question, image_id, thread, tenant=DEFAULT_TENANT)
        finally:
            services.close()
        if as_json:
            console.print_json(result.model_dump_json())
            return
        console.print(result.answer, markup=False, highlight=False)
        if result.weak_evidence:
            errors.print("note: the evidence is weak", markup=False, highlight=False)
        steps = " -> ".join(step["tool"] for step in result.plan["steps"])
        errors.print(
            f"plan: {steps}; thread {result.thread_id}; {result.took_ms:.0f} ms",
            markup=False,
            highlight=False,
        )

    _run(work)


@app.command()
def plan(
    question: Annotated[str, typer.Argument(help="the question to plan for")],
    image: Annotated[bool, typer.Option(help="plan as if an image came with the question")] = (
        False
    ),
) -> None:
    """Show the agent's plan for a question as JSON; nothing is executed."""

    def work(settings: Settings) -> None:
        from mmrag.agents.llm_planner import make_planner
        from mmrag.agents.planner import PlanRequest, clean_question

        stripped = clean_question(question, settings.agent.max_question_chars)
        request = PlanRequest(stripped, image, max_steps=settings.agent.max_steps)
        with closing(make_planner(settings)) as planner:
            console.print_json(planner.plan(request).model_dump_json())

    _run(work)


eval_app = typer.Typer(help="Evaluations over the labelled sets in the repository.")
app.add_typer(eval_app, name="eval")


@eval_app.command("routing")
def eval_routing(
    split: Annotated[
        str,
        typer.Option(
            help="train | test | fresh | augment | fresh2 | fresh3 (development: the configured"
            " planner trained on them) | fresh4 (held out) | all | cv (5 folds over development,"
            " local planner)"
        ),
    ] = "cv",
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Plan-shape accuracy of the configured planner over the routing set."""

    def work(settings: Settings) -> None:
        from mmrag.agents.evaluate import cross_validate, evaluate_routing
        from mmrag.agents.llm_planner import make_planner
        from mmrag.agents.routing_set import SPLITS, development, routing_set

        if split not in (*SPLITS, "all", "cv"):
            names = ", ".join(SPLITS)
            raise InvalidInput(f"unknown split {split!r}: use {names}, all or cv")
        if split == "cv":
            found = cross_validate(development())
        else:
            examples = [e for e in routing_set() if split == "all" or e.split == split]
            with closing(make_planner(settings)) as planner:
                found = evaluate_routing(planner, examples)
        report = found.as_dict()
        report["split"] = split
        report["planner"] = "local" if split == "cv" else settings.agent.planner
        if as_json:
            console.print_json(data=report)
            return
        console.print(
            f"{report['planner']} planner, {split} split: {report['correct']}/"
            f"{report['total']} plans of the expected shape ({report['accuracy']:.1%}); "
            f"plan latency p50 {report['plan_ms_p50']} ms, p99 {report['plan_ms_p99']} ms",
            highlight=False,
        )
        if len(report["by_split"]) > 1:
            console.print(
                "; ".join(
                    f"{name} {tally['correct']}/{tally['total']}"
                    for name, tally in report["by_split"].items()
                ),
                highlight=False,
            )
        table = Table("expected -> planned tool", "count", title="tool confusion")
        for pair, count in report["tool_confusion"].items():
            table.add_row(pair, str(count))
        console.print(table)
        if report["misses"]:
            misses = Table("question", "expected", "planned", title="misses")
            for miss in report["misses"]:
                misses.add_row(miss["question"], miss["expected"], miss["planned"])
            console.print(misses)

    _run(work)


@eval_app.command("answers")
def eval_answers(
    scenes: Annotated[
        int, typer.Option(min=1, max=200, help="shapes scenes to index (about 5 questions each)")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Final-answer and citation accuracy on the shapes answer set, fixed plan vs adaptive,
    with the fixture models in a temporary store (the configured store is not touched)."""

    def work(settings: Settings) -> None:
        from mmrag.agents.evaluate_answers import MODES, evaluate_answers

        report = evaluate_answers(settings.agent, scenes)
        if as_json:
            console.print_json(data=report)
            return
        console.print(f"{report['questions']} questions on {scenes} scenes", highlight=False)
        table = Table("agent", "answers right", "citations right", "ask p50 ms", "by kind")
        for mode in MODES:
            part = report[mode]
            table.add_row(
                mode,
                f"{part['answers_right']}/{part['total']} ({part['answer_accuracy']:.1%})",
                f"{part['citations_right']}/{part['total']} ({part['citation_accuracy']:.1%})",
                str(part["ask_ms_p50"]),
                ", ".join(f"{k} {v}" for k, v in part["by_kind"].items()),
            )
        console.print(table)

    _run(work)


SpecOption = Annotated[
    list[str] | None,
    typer.Option(
        "--spec", help="a model spec to evaluate; repeat to compare (default: configured)"
    ),
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="write the report as JSON here")]
HtmlOut = Annotated[Path | None, typer.Option("--html", help="write an HTML report here")]
ImagesDir = Annotated[Path, typer.Option("--images", help="the folder the dataset's images are in")]


def _report(
    task: str,
    dataset: Path,
    results: list[ModelResult],
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    import json

    from mmrag.evaluation.report import as_html, as_json, as_table

    console.print(as_table(task, results))
    if json_out is not None:
        json_out.write_text(json.dumps(as_json(task, str(dataset), results), indent=2) + "\n")
    if html_out is not None:
        html_out.write_text(as_html(task, str(dataset), results))


def _vision_options(settings: Settings) -> VisionOptions:
    from mmrag.workers.executor import vision_options

    return vision_options(settings)


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Annotated[
        Path, typer.Argument(help="Karpathy (Flickr30k/COCO) or COCO captions JSON")
    ],
    images: ImagesDir,
    spec: SpecOption = None,
    split: Annotated[str | None, typer.Option(help="Karpathy split to keep (test)")] = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
) -> None:
    """Recall@1/5/10 text->image and image->text of embedders on your captioned images."""

    def work(settings: Settings) -> None:
        from mmrag.evaluation.datasets import load_captions
        from mmrag.evaluation.runner import eval_retrieval as run
        from mmrag.models.clip.embedder import EmbedderOptions

        data = load_captions(dataset, images, split)
        models = settings.models
        options = EmbedderOptions(
            device=models.device, batch_size=models.batch_size, cache_dir=models.cache_dir
        )
        specs = spec or [settings.embedder_spec]
        _report("retrieval", dataset, [run(s, data, options) for s in specs], json_out, html_out)

    _run(work)


@eval_app.command("captions")
def eval_captions(
    dataset: Annotated[Path, typer.Argument(help="Karpathy or COCO captions JSON")],
    images: ImagesDir,
    spec: SpecOption = None,
    split: Annotated[str | None, typer.Option(help="Karpathy split to keep (test)")] = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
) -> None:
    """BLEU-4 and CIDEr-D of captioning models against your reference captions."""

    def work(settings: Settings) -> None:
        from mmrag.evaluation.datasets import load_captions
        from mmrag.evaluation.runner import eval_captions as run

        data = load_captions(dataset, images, split)
        options = _vision_options(settings)
        specs = spec or [settings.model_spec("vlm")]
        _report("captions", dataset, [run(s, data, options) for s in specs], json_out, html_out)

    _run(work)


@eval_app.command("vqa")
def eval_vqa(
    questions: Annotated[Path, typer.Argument(help="VQAv2 questions JSON")],
    annotations: Annotated[Path, typer.Argument(help="VQAv2 annotations JSON")],
    images: ImagesDir,
    spec: SpecOption = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
) -> None:
    """VQA accuracy (min(humans agreeing / 3, 1)) of VLMs on your questions."""

    def work(settings: Settings) -> None:
        from mmrag.evaluation.datasets import load_vqa
        from mmrag.evaluation.runner import eval_vqa as run

        data = load_vqa(questions, annotations, images)
        options = _vision_options(settings)
        specs = spec or [settings.model_spec("vlm")]
        _report("vqa", questions, [run(s, data, options) for s in specs], json_out, html_out)

    _run(work)


@eval_app.command("grounding")
def eval_grounding(
    dataset: Annotated[Path, typer.Argument(help="COCO detection JSON")],
    images: ImagesDir,
    spec: SpecOption = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
) -> None:
    """Box AP (COCOeval) of grounding / detection models, the categories as vocabulary."""

    def work(settings: Settings) -> None:
        from mmrag.evaluation.datasets import load_detection
        from mmrag.evaluation.runner import eval_grounding as run

        data = load_detection(dataset, images)
        options = _vision_options(settings)
        specs = spec or [settings.model_spec("grounding")]
        _report("grounding", dataset, [run(s, data, options) for s in specs], json_out, html_out)

    _run(work)


def _index_file(services: Services, path: Path) -> str:
    """Index the image file (same bytes, same id) and return its id."""
    from mmrag.retrieval.items import IngestItem

    item = IngestItem.upload(_read_file(path, services.settings), path.name, (), {})
    result = services.ingest([item]).results[0]
    if result.image is None:
        raise result.error or InvalidInput(f"{path} could not be indexed")
    return result.image.image_id


@app.command()
def annotate(
    source: Annotated[
        str,
        typer.Argument(
            help="a folder or image file, a zip/tar archive, an http(s) URL, or 'indexed'"
        ),
    ],
    caption: Annotated[bool, typer.Option(help="caption every image")] = False,
    detect: Annotated[str | None, typer.Option(help='labels to detect, e.g. "person,car"')] = None,
    ground: Annotated[
        str | None, typer.Option(help='phrases to ground, ";"-separated: "the red car;a dog"')
    ] = None,
    ask: Annotated[
        list[str] | None, typer.Option(help="a question for every image (repeat)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=256)] = 16,
    export: Annotated[
        tuple[str, Path] | None,
        typer.Option(help="write an export when done: FORMAT PATH (coco, jsonl, labelstudio)"),
    ] = None,
) -> None:
    """Annotate many images as one resumable job, with a progress bar and an export."""

    def work(settings: Settings) -> None:
        from mmrag.cli_jobs import run_annotate

        tasks = _annotate_tasks(caption, detect, ground, ask or [])
        run_annotate(settings, source, tasks, batch_size, export, errors, console)

    _run(work)


def _annotate_tasks(
    caption: bool, detect: str | None, ground: str | None, ask: list[str]
) -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = [{"task": "embed"}]
    if caption:
        tasks.append({"task": "caption"})
    if detect is not None:
        tasks.append({"task": "detect", "labels": _split(detect, ",", "--detect")})
    if ground is not None:
        tasks.append({"task": "ground", "phrases": _split(ground, ";", "--ground")})
    if ask:
        tasks.append({"task": "vqa", "questions": ask})
    return tasks


def _split(text: str, separator: str, option: str) -> list[str]:
    parts = [part.strip() for part in text.split(separator) if part.strip()]
    if not parts:
        raise InvalidInput(f"{option} needs at least one label, separated by {separator!r}")
    return parts


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
    )


def _reporter(progress: Progress, task: TaskID, verb: str) -> Callable[[int, int], None]:
    """A progress callback that moves the bar and, off a terminal (logs, supervisors), where
    the bar draws nothing, prints a line every tenth: "indexed 40 of 400"."""
    reported = [0.0]

    def advance(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)
        if not errors.is_terminal and total and done / total >= reported[0]:
            errors.print(f"{verb} {done} of {total}", highlight=False)
            reported[0] = done / total + 0.1

    return advance


def _read_file(path: Path, settings: Settings) -> bytes:
    try:
        if not path.is_file():
            raise InvalidInput(f"cannot read {path}: not a file")
        if path.stat().st_size > settings.limits.max_image_bytes:
            raise InvalidInput(f"{path} is over {settings.limits.max_image_bytes} bytes")
        return path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None


def _print_report(report: IngestReport) -> None:
    console.print(
        f"indexed {len(report.indexed)}, duplicates {len(report.duplicates)}, "
        f"failed {len(report.failed)} in {report.elapsed_s:.1f} s",
        highlight=False,
    )
    if report.failed:
        table = Table(title="failed")
        table.add_column("source", overflow="fold")
        table.add_column("reason", overflow="fold")
        for source, reason in report.failed:
            table.add_row(source, reason)
        console.print(table)


keys_app = typer.Typer(help="API keys: each belongs to a tenant and holds scopes.")
app.add_typer(keys_app, name="keys")
tenants_app = typer.Typer(help="Tenants: who owns images, jobs and conversations.")
app.add_typer(tenants_app, name="tenants")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for (made if new)")],
    scopes: Annotated[str, typer.Option(help="comma list of read, write, jobs, admin")] = "read",
    name: Annotated[str | None, typer.Option(help="a name for logs (default: its id)")] = None,
    expires: Annotated[
        str | None, typer.Option(help="30d, 12h, 90m from now, or an ISO 8601 time")
    ] = None,
) -> None:
    """Make a key; its secret is printed once and only its hash is kept."""
    from mmrag.cli_keys import create_key

    _run(lambda settings: create_key(settings, console, tenant, scopes, name, expires))


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
) -> None:
    """Every key: id, name, tenant, scopes, expiry and whether it is active (no secrets)."""
    from mmrag.cli_keys import list_keys

    _run(lambda settings: list_keys(settings, console, tenant))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Refuse the key from now on, in every API process on this data dir."""
    from mmrag.cli_keys import revoke_key

    _run(lambda settings: revoke_key(settings, console, key_id))


@keys_app.command("rotate")
def keys_rotate(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke the key and make its successor (same tenant, name, scopes, expiry)."""
    from mmrag.cli_keys import rotate_key

    _run(lambda settings: rotate_key(settings, console, key_id))


@tenants_app.command("list")
def tenants_list() -> None:
    """Every tenant with its active keys and what it holds (images, original bytes)."""
    from mmrag.cli_keys import list_tenants

    _run(lambda settings: list_tenants(settings, console))


@tenants_app.command("migrate")
def tenants_migrate() -> None:
    """Give each tenant its own points where the first design shared one (server stopped)."""

    def work(settings: Settings) -> None:
        from mmrag.retrieval.stores import open_store
        from mmrag.retrieval.tenants import migrate_shared_points

        store = open_store(settings)
        try:
            made = migrate_shared_points(store)
        finally:
            store.close()
        console.print(f"{made} tenant points made from shared ones")

    _run(work)


@tenants_app.command("delete")
def tenants_delete(tenant: Annotated[str, typer.Argument(help="the tenant's name")]) -> None:
    """Refuse every key of the tenant from now on (its images stay until deleted)."""
    from mmrag.cli_keys import delete_tenant

    _run(lambda settings: delete_tenant(settings, console, tenant))


@app.command()
def fsck(
    repair: Annotated[bool, typer.Option("--repair", help="delete what is orphaned")] = False,
) -> None:
    """Check that index entries and blobs agree, both ways (run with the server stopped)."""

    def work(settings: Settings) -> None:
        from mmrag.retrieval.blobs import FilesystemBlobStore
        from mmrag.retrieval.fsck import fsck as check
        from mmrag.retrieval.stores import open_store

        store = open_store(settings)
        try:
            report = check(store, FilesystemBlobStore.from_settings(settings), repair)
        finally:
            store.close()
        console.print(f"{report.points} index entries, {report.blobs} blobs")
        for key, tenant, missing in report.entries_without_blobs:
            console.print(f"entry without blobs: point {key} (tenant {tenant}) lacks {missing}")
        for kind, sha256 in report.blobs_without_entries:
            console.print(f"blob without entry: {kind} {sha256}")
        for path in report.leftovers:
            console.print(f"leftover temporary file: {path}")
        if report.clean:
            console.print("clean")
        elif report.repaired:
            console.print("repaired")
        else:
            console.print("problems found: run `mmrag fsck --repair` to fix them")
            raise typer.Exit(ERROR_EXIT)

    _run(work)


if __name__ == "__main__":  # pragma: no cover
    app()
