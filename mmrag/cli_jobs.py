"""``mmrag annotate``: one job run from the command line, with a Rich progress bar.

The job runs in this process's job driver (model work in-process or on the Celery workers,
per settings) and is kept in the job store like any other: a run that is interrupted is
resumed by the next ``mmrag serve`` or ``mmrag annotate`` on the same data dir.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mmrag.config import Settings
from mmrag.errors import InvalidInput, MmragError
from mmrag.workers.jobs.export import ExportFormat, export
from mmrag.workers.jobs.records import UNFINISHED
from mmrag.workers.jobs.service import JobService, JobStatus
from mmrag.workers.jobs.spec import JobSpec

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("coco", "jsonl", "labelstudio")
_POLL_S = 0.2
_SHOWN_FAILURES = 20


def run_annotate(
    settings: Settings,
    source: str,
    tasks: list[dict[str, object]],
    batch_size: int,
    export_to: tuple[str, Path] | None,
    stderr: Console,
    stdout: Console,
) -> JobStatus:
    from mmrag.services import Services

    export_format = _export_format(export_to)
    source_body, archive, settings = _source(source, settings)
    spec = _spec({"source": source_body, "tasks": tasks, "options": {"batch_size": batch_size}})
    services = Services.open(settings)
    jobs = JobService.open(services)
    try:
        job = jobs.submit(spec, archive)
        jobs.start(only=job.id)  # other jobs in the data dir are the server's to drive
        status = _follow(jobs, job.id, stderr)
        if export_to is not None and export_format is not None:
            _write_export(jobs, job.id, export_format, export_to[1])
        _print_summary(jobs, status, stdout)
    finally:
        jobs.close()
        services.close()
    if status.counts["done"] == 0 and status.counts["failed"]:
        raise MmragError(f"every item failed ({status.counts['failed']})")
    return status


def _export_format(export_to: tuple[str, Path] | None) -> ExportFormat | None:
    if export_to is None:
        return None
    name = export_to[0].lower()
    for known in EXPORT_FORMATS:
        if name == known:
            return known
    raise InvalidInput(f"unknown export format {export_to[0]!r}: use coco, jsonl or labelstudio")


def _source(source: str, settings: Settings) -> tuple[dict[str, Any], Path | None, Settings]:
    """The spec's source for SOURCE, the archive to upload, and the settings to run with."""
    if source == "indexed":
        return {"kind": "indexed"}, None, settings
    if source.startswith(("http://", "https://")):
        return {"kind": "urls", "urls": [source]}, None, settings
    path = Path(source).expanduser().absolute()
    if not path.exists():
        raise InvalidInput(f"no such file or directory: {path}")
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        # The job keeps its own copy (submit moves it), so the caller's file stays put.
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.NamedTemporaryFile(
                dir=settings.jobs_dir, suffix=".upload", delete=False
            ) as out,
            path.open("rb") as handle,
        ):
            shutil.copyfileobj(handle, out)
        return {"kind": "archive"}, Path(out.name), settings
    # As for `mmrag index`: a path typed here is the caller's choice, so with no roots
    # configured it is the root. Links that lead out of it are still refused.
    if not settings.allowed_roots:
        settings = settings.model_copy(update={"allowed_roots": [path.resolve()]})
    return {"kind": "paths", "paths": [str(path)]}, None, settings


def _spec(body: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}") from None


def _follow(jobs: JobService, job_id: str, stderr: Console) -> JobStatus:
    progress = Progress(
        TextColumn("annotating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr,
    )
    with progress:
        status = jobs.status(job_id)
        task = progress.add_task("job", total=status.total, failed=0, rate="")
        while True:
            rate = f"{status.rate_per_s:.1f}/s" if status.rate_per_s else ""
            progress.update(
                task, completed=status.settled, failed=status.counts["failed"], rate=rate
            )
            if status.state not in UNFINISHED:
                return status
            time.sleep(_POLL_S)
            status = jobs.status(job_id)


def _write_export(jobs: JobService, job_id: str, format: ExportFormat, path: Path) -> None:
    job = jobs.store.get(job_id)
    try:
        with path.open("w", encoding="utf-8") as out:
            for chunk in export(format, job.spec, lambda: jobs.items(job_id)):
                out.write(chunk)
    except OSError as error:
        raise InvalidInput(f"cannot write {path}: {error.strerror}") from None


def _print_summary(jobs: JobService, status: JobStatus, stdout: Console) -> None:
    counts = status.counts
    elapsed = (status.finished or time.time()) - (status.started or status.created)
    stdout.print(
        f"job {status.id}: done {counts['done']}, failed {counts['failed']}, "
        f"skipped {counts['skipped']} in {elapsed:.1f} s",
        highlight=False,
    )
    failed = [item for item in jobs.items(status.id) if item.state == "failed"]
    if failed:
        table = Table(title=f"failed ({len(failed)})")
        table.add_column("source", overflow="fold")
        table.add_column("reason", overflow="fold")
        for item in failed[:_SHOWN_FAILURES]:
            table.add_row(item.key, item.reason)
        stdout.print(table)
