"""Jobs driven end to end in the embedded mode: tiny random models (structure, not answers),
the real edge store, SQLite job state."""

from __future__ import annotations

import pytest
from jobs.conftest import services_of, write_scenes
from jobs.helpers import spec, wait_for
from retrieval.local_http import Route, local_server
from workers.shapes_scenes import held_out, index_scenes, png_of

from mmrag.retrieval.addresses import AddressPolicy
from mmrag.retrieval.sources import UrlFetcher
from mmrag.workers.jobs.export import export_jsonl
from mmrag.workers.jobs.service import JobService

pytestmark = pytest.mark.slow


def test_a_folder_is_captioned_detected_and_indexed(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    files = write_scenes(root / "shots", 10)
    (root / "shots" / "broken.png").write_bytes(b"not an image at all")
    job = jobs.submit(
        spec(
            {"kind": "paths", "paths": [str(root / "shots")]},
            {"task": "caption"},
            {"task": "detect", "labels": ["red circle", "blue square"]},
        )
    )
    assert job.total == 11
    status = wait_for(jobs, job.id, {"completed"})
    assert status.counts["done"] == 10
    assert status.counts["failed"] == 1
    assert set(status.timings_s) >= {"ingest", "caption", "detect"}
    assert status.rate_per_s is not None
    assert status.eta_s == 0.0
    items = list(jobs.items(job.id))
    assert [item.key for item in items] == sorted(
        str(f) for f in [*files, root / "shots" / "broken.png"]
    )
    broken = next(item for item in items if item.key.endswith("broken.png"))
    assert broken.state == "failed"
    assert broken.attempts == 1  # bad input is final: never retried
    assert broken.reason
    for item in items:
        if item.state != "done":
            continue
        assert item.result is not None
        payload = services_of(jobs).image(str(item.image_id))
        assert payload["model_caption"] == item.result["caption"]
        assert set(payload["counts"]) == {"red_circle", "blue_square"}
        assert (item.result["width"], item.result["height"]) == (
            payload["width"],
            payload["height"],
        )
        for box in item.result["detections"]:
            assert box["label"] in {"red circle", "blue square"}


def test_rerunning_over_indexed_images_and_missing_ones(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "a", 5)
    first = jobs.submit(spec({"kind": "paths", "paths": [str(root / "a")]}, {"task": "embed"}))
    wait_for(jobs, first.id, {"completed"})
    ids = [str(item.image_id) for item in jobs.items(first.id)]
    services_of(jobs).delete_image(ids[0])
    second = jobs.submit(
        spec({"kind": "indexed"}, {"task": "vqa", "questions": ["how many shapes?"]}, batch=2)
    )
    assert second.total == 4
    status = wait_for(jobs, second.id, {"completed"})
    assert status.counts["done"] == 4
    for item in jobs.items(second.id):
        assert item.result is not None
        assert [answer["question"] for answer in item.result["answers"]] == ["how many shapes?"]


def test_slow_urls_are_retried_then_failed_and_private_redirects_refused(
    jobs: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = jobs.services
    limits = services.settings.limits.model_copy(update={"url_timeout_s": 0.3})
    # The test server is on loopback: allow exactly that, nothing else private.
    monkeypatch.setattr(
        services,
        "url_fetcher",
        lambda: UrlFetcher(limits, policy=AddressPolicy.allowing("127.0.0.1/32")),
    )
    with local_server() as server:
        server.routes["/good.png"] = Route(body=png_of(held_out(1)[0]))
        server.routes["/slow.png"] = Route(body=b"late", delay_s=1.0)
        server.routes["/away.png"] = Route(302, headers={"Location": "http://10.1.2.3/x.png"})
        urls = [server.url(path) for path in ("/good.png", "/slow.png", "/away.png")]
        job = jobs.submit(spec({"kind": "urls", "urls": urls}, {"task": "caption"}))
        status = wait_for(jobs, job.id, {"completed"})
        slow_requests = sum(1 for path, _ in server.requests if path == "/slow.png")
    assert (status.counts["done"], status.counts["failed"]) == (1, 2)
    good, slow, away = jobs.items(job.id)
    assert good.state == "done"
    assert slow.state == "failed"
    assert slow.attempts == 3  # timeouts may pass: retried up to max_attempts
    assert slow_requests == 3
    assert "no answer" in slow.reason
    assert away.state == "failed"
    assert away.attempts == 1  # a refusal is final
    assert "10.1.2.3" in away.reason


def test_cancel_stops_scheduling_and_keeps_what_ran(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "many", 24)
    job = jobs.submit(
        spec({"kind": "paths", "paths": [str(root / "many")]}, {"task": "caption"}, batch=2)
    )
    wait_for(jobs, job.id, {"running"})
    jobs.cancel(job.id)
    status = wait_for(jobs, job.id, {"cancelled"})
    assert status.counts["running"] == 0
    assert status.counts["pending"] > 0
    assert status.counts["done"] + status.counts["pending"] == 24
    assert jobs.status(job.id).counts == status.counts  # nothing moves after the cancel


def test_running_a_job_again_skips_images_already_annotated(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "again", 6)
    tasks = ({"task": "caption"}, {"task": "detect", "labels": ["red circle", "green square"]})
    source = {"kind": "paths", "paths": [str(root / "again")]}
    first = jobs.submit(spec(source, *tasks))
    assert wait_for(jobs, first.id, {"completed"}).counts["done"] == 6
    second = jobs.submit(spec(source, *tasks))
    status = wait_for(jobs, second.id, {"completed"})
    assert status.counts["skipped"] == 6
    assert status.counts["done"] == 0
    before = [item.result for item in jobs.items(first.id)]
    after = [item.result for item in jobs.items(second.id)]
    # The results read back from the index are the ones written (scores to float rounding).
    for old, new in zip(before, after, strict=True):
        assert old is not None
        assert new is not None
        assert new["caption"] == old["caption"]
        assert [(b["label"], b["box"]) for b in new["detections"]] == [
            (b["label"], b["box"]) for b in old["detections"]
        ]
        assert [b["score"] for b in new["detections"]] == pytest.approx(
            [b["score"] for b in old["detections"]]
        )
    # Another vocabulary is new work: nothing to skip.
    other = jobs.submit(spec(source, {"task": "detect", "labels": ["blue triangle"]}))
    assert wait_for(jobs, other.id, {"completed"}).counts["done"] == 6


def test_indexed_images_are_picked_by_a_search_filter(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "from-disk", 3)
    on_disk = jobs.submit(
        spec({"kind": "paths", "paths": [str(root / "from-disk")]}, {"task": "embed"})
    )
    wait_for(jobs, on_disk.id, {"completed"})
    uploaded = index_scenes(services_of(jobs), held_out(8)[5:])  # other scenes than on disk
    picked = jobs.submit(
        spec({"kind": "indexed", "filter": {"source": "upload"}}, {"task": "caption"})
    )
    assert picked.total == 3
    wait_for(jobs, picked.id, {"completed"})
    assert sorted(str(item.image_id) for item in jobs.items(picked.id)) == sorted(uploaded)


def test_the_same_bytes_twice_in_a_source_are_one_image_done_once(jobs: JobService) -> None:
    root = jobs.services.settings.allowed_roots[0]
    first, _ = write_scenes(root / "copies", 2)
    (root / "copies" / "z-copy.png").write_bytes(first.read_bytes())
    job = jobs.submit(
        spec({"kind": "paths", "paths": [str(root / "copies")]}, {"task": "caption"}, batch=2)
    )
    status = wait_for(jobs, job.id, {"completed"})
    assert (status.counts["done"], status.counts["skipped"]) == (2, 1)
    # Batches run side by side: either copy may be the first to bring the image.
    original, _, copy = jobs.items(job.id)
    assert copy.key.endswith("z-copy.png")
    skipped, kept = (copy, original) if copy.state == "skipped" else (original, copy)
    assert skipped.reason == f"the same image as item {kept.seq}"
    assert skipped.image_id == kept.image_id
    lines = list(export_jsonl(lambda: jobs.items(job.id)))
    assert len(lines) == 2  # each image once
