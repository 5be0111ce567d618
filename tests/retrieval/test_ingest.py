"""The ingest pipeline end to end: tiny embedder, a real store, real blobs on disk."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from retrieval import ingest_images as images
from retrieval.local_http import Route as HttpRoute
from retrieval.local_http import local_server

from mmrag.config import Settings
from mmrag.errors import ForbiddenSource, InvalidInput, Unavailable
from mmrag.models.clip.embedder import ClipEmbedder
from mmrag.retrieval.addresses import AddressPolicy
from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.retrieval.ingest import IngestOptions, IngestPipeline
from mmrag.retrieval.items import IngestItem, IngestReport, clean_metadata, items_from_paths
from mmrag.retrieval.sources import ServerPaths, UrlFetcher
from mmrag.retrieval.store import ImagePoint, VectorStore

FIXED_NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


class FailingStore:
    """Wraps a store; upserts holding a poisoned image id fail with ``error`` (InvalidInput:
    a store-side refusal of that point). Records the size of every upsert."""

    def __init__(
        self, inner: VectorStore, poisoned: set[str], error: Exception | None = None
    ) -> None:
        self.inner = inner
        self.poisoned = poisoned
        self.error = error or InvalidInput("the store refused this point")
        self.backend_name = inner.backend_name
        self.upserts: list[int] = []

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        self.upserts.append(len(points))
        if any(point.image_id in self.poisoned for point in points):
            raise self.error
        self.inner.upsert(points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingEmbedder:
    """Wraps an embedder; records the size of every image forward pass, may fail them."""

    def __init__(self, inner: ClipEmbedder, error: Exception | None = None) -> None:
        self.inner = inner
        self.error = error
        self.image_batches: list[int] = []

    def embed_prepared(self, prepared: Sequence[Any]) -> Any:
        self.image_batches.append(len(prepared))
        if self.error is not None:
            raise self.error
        return self.inner.embed_prepared(prepared)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(settings: Settings) -> Iterator[VectorStore]:
    from mmrag.retrieval.store_edge import EdgeVectorStore

    opened = EdgeVectorStore(settings.store_dir, settings.store)
    yield opened
    opened.close()


@pytest.fixture
def blobs(settings: Settings) -> FilesystemBlobStore:
    return FilesystemBlobStore.from_settings(settings)


def make_pipeline(
    embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
    **options: Any,
) -> IngestPipeline:
    chosen = IngestOptions(batch_size=4, workers=2, **options)
    return IngestPipeline(embedder, store, blobs, settings, chosen, clock=lambda: FIXED_NOW)


@pytest.fixture
def pipeline(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> IngestPipeline:
    return make_pipeline(tiny_embedder, store, blobs, settings)


def upload(data: bytes, name: str = "a.jpg", **extra: Any) -> IngestItem:
    return IngestItem.upload(data, name, **extra)


def blob_files(blobs: FilesystemBlobStore) -> list[str]:
    if not blobs.root.exists():
        return []
    return sorted(str(p.relative_to(blobs.root)) for p in blobs.root.rglob("*") if p.is_file())


def image_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def ids(report: IngestReport) -> list[str | None]:
    return [result.image.image_id if result.image else None for result in report.results]


# -- good paths ------------------------------------------------------------------------------


def test_uploads_become_points_blobs_and_a_report(
    pipeline: IngestPipeline, store: VectorStore, blobs: FilesystemBlobStore, settings: Settings
) -> None:
    data = [images.jpeg((64, 48), seed=seed) for seed in range(6)]

    report = pipeline.run([upload(blob, f"img{i}.jpg") for i, blob in enumerate(data)])

    assert report.failed == []
    assert report.duplicates == []
    assert len(report.indexed) == 6
    assert store.count() == 6
    first = report.results[0].image
    assert first is not None
    payload = store.get([first.image_id])[first.image_id]
    assert payload == {
        "id": first.image_id,
        "sha256": first.sha256,
        "width": 64,
        "height": 48,
        "format": "JPEG",
        "bytes": len(data[0]),
        "created": "2026-11-21T12:00:00+00:00",
        "source": {"kind": "upload", "uri": "img0.jpg"},
        "captions": [],
        "caption": "",
        "labels": [],
        "metadata": {},
        "embedder_spec": settings.embedder_spec,
        "embedder_dim": 32,
        "embedding": {"backend": "torch", "precision": "fp32"},  # what made the vectors
    }
    assert blobs.read("original", first.sha256) == data[0]
    with Image.open(io.BytesIO(blobs.read("thumbnail", first.sha256))) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert max(thumbnail.size) <= 256
    assert store.get_vector(first.image_id, "text") is None


def test_image_vector_equals_embedding_the_decoded_image(
    pipeline: IngestPipeline, store: VectorStore, tiny_embedder: ClipEmbedder
) -> None:
    data = images.jpeg((64, 48), seed=3)

    (image_id,) = pipeline.run([upload(data)]).indexed

    with Image.open(io.BytesIO(data)) as opened:
        expected = tiny_embedder.embed_images([opened.convert("RGB")])[0]
    stored = store.get_vector(image_id, "image")
    assert stored is not None
    np.testing.assert_allclose(stored, expected, atol=1e-5)


def test_results_keep_input_order(pipeline: IngestPipeline) -> None:
    items = [
        upload(images.jpeg(seed=1), "one.jpg"),
        upload(b"junk", "two.jpg"),
        upload(images.jpeg(seed=3), "three.jpg"),
        upload(images.jpeg(seed=1), "four.jpg"),
        upload(images.jpeg(seed=5), "five.jpg"),
    ]

    report = pipeline.run(items)

    assert [r.source for r in report.results] == [
        "one.jpg",
        "two.jpg",
        "three.jpg",
        "four.jpg",
        "five.jpg",
    ]
    assert [r.status for r in report.results] == [
        "indexed",
        "failed",
        "indexed",
        "duplicate",
        "indexed",
    ]


def test_same_bytes_twice_in_one_run_make_one_point(
    pipeline: IngestPipeline, store: VectorStore
) -> None:
    data = images.jpeg(seed=7)

    report = pipeline.run([upload(data, "a.jpg"), upload(data, "copy.jpg")])

    assert report.indexed == report.duplicates
    assert ids(report)[0] == ids(report)[1]
    assert store.count() == 1


def test_duplicates_across_many_batches_each_settle(
    pipeline: IngestPipeline, store: VectorStore
) -> None:
    data = [images.jpeg(seed=seed) for seed in range(3)]
    items = [upload(data[i % 3], f"{i}.jpg") for i in range(20)]  # batches of 4, window of 8

    report = pipeline.run(items)

    assert len(report.results) == 20
    assert len(report.indexed) == 3
    assert len(report.duplicates) == 17
    assert store.count() == 3


def test_reingesting_is_a_no_op_returning_the_same_id(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    data = images.jpeg(seed=11)
    first = make_pipeline(tiny_embedder, store, blobs, settings).run([upload(data)])
    later = IngestPipeline(
        tiny_embedder,
        store,
        blobs,
        settings,
        IngestOptions(batch_size=4),
        clock=lambda: FIXED_NOW.replace(year=2030),
    )

    again = later.run([upload(data, "renamed.jpg", captions=["new words"])])

    assert again.duplicates == first.indexed
    assert again.results[0].image == first.results[0].image  # same facts, same created
    assert store.count() == 1
    payload = store.get(first.indexed)[first.indexed[0]]
    assert payload["source"]["uri"] == "a.jpg"
    assert payload["captions"] == []


def test_reingesting_restores_missing_blobs(
    pipeline: IngestPipeline, store: VectorStore, blobs: FilesystemBlobStore
) -> None:
    data = images.jpeg(seed=12)
    first = pipeline.run([upload(data)])
    image = first.results[0].image
    assert image is not None
    blobs.delete(image.sha256)

    again = pipeline.run([upload(data)])

    assert again.duplicates == first.indexed
    assert blobs.read("original", image.sha256) == data
    assert blobs.exists("thumbnail", image.sha256)
    assert store.count() == 1


def test_a_single_caption_string_is_one_caption(
    pipeline: IngestPipeline, store: VectorStore
) -> None:
    item = IngestItem.upload(images.jpeg(), "a.jpg", captions="a lone caption")

    (image_id,) = pipeline.run([item]).indexed

    assert store.get([image_id])[image_id]["captions"] == ["a lone caption"]


def test_captions_are_embedded_into_the_text_and_sparse_vectors(
    pipeline: IngestPipeline, store: VectorStore, tiny_embedder: ClipEmbedder
) -> None:
    report = pipeline.run(
        [
            upload(images.jpeg(seed=1), "one.jpg", captions=["a red circle on grass"]),
            upload(images.jpeg(seed=2), "two.jpg", captions=["  a blue square  ", "", "sky"]),
            upload(images.jpeg(seed=3), "three.jpg"),
        ]
    )

    one, two, three = report.indexed
    expected_one = tiny_embedder.embed_texts(["a red circle on grass"])[0]
    stored_one = store.get_vector(one, "text")
    assert stored_one is not None
    np.testing.assert_allclose(stored_one, expected_one, atol=1e-5)
    both = tiny_embedder.embed_texts(["a blue square", "sky"]).mean(axis=0)
    stored_two = store.get_vector(two, "text")
    assert stored_two is not None
    np.testing.assert_allclose(stored_two, both / np.linalg.norm(both), atol=1e-5)
    assert store.get_vector(three, "text") is None
    payload = store.get([two])[two]
    assert payload["captions"] == ["a blue square", "sky"]
    assert payload["caption"] == "a blue square"
    from mmrag.retrieval.sparse import encode_query

    hits = store.search_sparse(encode_query("circle"), limit=5)
    assert [hit.image_id for hit in hits] == [one]


def test_metadata_is_stored(pipeline: IngestPipeline, store: VectorStore) -> None:
    metadata = {"camera": "x100", "tags": ("a", "b"), "rating": 4}

    (image_id,) = pipeline.run([upload(images.jpeg(), metadata=metadata)]).indexed

    assert store.get([image_id])[image_id]["metadata"] == {
        "camera": "x100",
        "tags": ["a", "b"],
        "rating": 4,
    }


def test_progress_counts_every_item(pipeline: IngestPipeline) -> None:
    seen: list[tuple[int, int]] = []
    items = [upload(images.jpeg(seed=seed)) for seed in range(5)] + [upload(b"")]

    pipeline.run(items, lambda done, total: seen.append((done, total)))

    assert seen[-1] == (6, 6)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert {total for _, total in seen} == {6}


def test_decoding_runs_ahead_on_worker_threads(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    reader_threads: set[str] = set()
    caller = threading.current_thread().name

    def reader(data: bytes) -> Any:
        def read() -> bytes:
            reader_threads.add(threading.current_thread().name)
            return data

        return read

    items = [
        IngestItem("upload", f"{seed}.jpg", reader(images.jpeg(seed=seed))) for seed in range(8)
    ]
    pipeline = make_pipeline(tiny_embedder, store, blobs, settings, ahead=3)

    report = pipeline.run(items)

    assert len(report.indexed) == 8
    assert caller not in reader_threads
    assert all(name.startswith("ingest-decode") for name in reader_threads)


def test_directory_items_with_a_symlink_out(
    pipeline: IngestPipeline, settings: Settings, tmp_path: Path, store: VectorStore
) -> None:
    root = settings.allowed_roots[0]
    (root / "sub").mkdir()
    (root / "a.jpg").write_bytes(images.jpeg(seed=1))
    (root / "sub" / "b.png").write_bytes(images.png(images.scene(seed=2)))
    (root / "notes.txt").write_text("not an image")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(images.jpeg(seed=3))
    (root / "sub" / "c.jpg").symlink_to(secret)
    paths = ServerPaths(settings.allowed_roots, settings.limits)

    report = pipeline.run(items_from_paths(paths, [root], captions=["from disk"]))

    assert [(Path(r.source).relative_to(root).as_posix(), r.status) for r in report.results] == [
        ("a.jpg", "indexed"),
        ("sub/b.png", "indexed"),
        ("sub/c.jpg", "failed"),
    ]
    assert isinstance(report.results[2].error, ForbiddenSource)
    assert store.count() == 2
    payload = store.get([report.indexed[0]])[report.indexed[0]]
    assert payload["source"] == {"kind": "path", "uri": str(root / "a.jpg")}
    assert payload["caption"] == "from disk"


def test_url_item_from_a_local_server(
    pipeline: IngestPipeline, settings: Settings, store: VectorStore
) -> None:
    data = images.jpeg(seed=21)
    with (
        local_server() as server,
        UrlFetcher(settings.limits, policy=AddressPolicy.allowing("127.0.0.1/32")) as fetcher,
    ):
        server.routes["/cat.jpg"] = HttpRoute(body=data)
        report = pipeline.run([IngestItem.url(fetcher, server.url("/cat.jpg"))])

    (image_id,) = report.indexed
    assert store.get([image_id])[image_id]["source"] == {
        "kind": "url",
        "uri": server.url("/cat.jpg"),
    }


# -- bad inputs: each fails alone and changes nothing -----------------------------------------


def bad_uploads() -> dict[str, bytes]:
    jpeg = images.jpeg((256, 256), seed=9)
    return {
        "corrupt": np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "text.jpg": b"I am a text file with a .jpg name\n",
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "bomb.png": images.png_claiming(100_000, 100_000),
        "50mp.png": images.small_file_decoding_huge(8_000, 6_250),
        "sliver.png": images.sliver(1, 20_000),  # would be 224 x 4,480,000 for the model
    }


EXPECTED_ERRORS = {
    "corrupt": "UnsupportedMedia",
    "text.jpg": "UnsupportedMedia",
    "empty.jpg": "UnsupportedMedia",
    "truncated.jpg": "UnsupportedMedia",
    "bomb.png": "TooLarge",
    "50mp.png": "TooLarge",
    "sliver.png": "InvalidInput",
}


@pytest.mark.parametrize("name", list(EXPECTED_ERRORS))
def test_bad_upload_fails_alone_and_changes_nothing(
    pipeline: IngestPipeline, store: VectorStore, blobs: FilesystemBlobStore, name: str
) -> None:
    pipeline.run([upload(images.jpeg(seed=0), "existing.jpg")])
    points, files = store.count(), blob_files(blobs)

    report = pipeline.run([upload(bad_uploads()[name], name)])

    ((source, reason),) = report.failed
    assert source == name
    assert reason
    assert "\n" not in reason
    assert type(report.results[0].error).__name__ == EXPECTED_ERRORS[name]
    assert store.count() == points
    assert blob_files(blobs) == files


def test_over_the_byte_limit_fails_and_changes_nothing(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_image_bytes": 2048})}
    )
    pipeline = make_pipeline(tiny_embedder, store, blobs, small)

    report = pipeline.run([upload(images.jpeg((256, 256)), "big.jpg")])

    assert type(report.results[0].error).__name__ == "TooLarge"
    assert store.count() == 0
    assert blob_files(blobs) == []


@pytest.mark.parametrize(
    ("captions", "metadata"),
    [
        (["x" * 3000], {}),
        ([], {"blob": "y" * 20_000}),
        ([], {"bad": float("nan")}),
        ([], {1: "non-string key"}),
        ([], {"exif.camera": "x100"}),  # a dotted key would be a nested path in the store
    ],
)
def test_bad_captions_or_metadata_fail_the_item(
    pipeline: IngestPipeline,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    captions: list[str],
    metadata: dict[Any, Any],
) -> None:
    report = pipeline.run([upload(images.jpeg(), captions=captions, metadata=metadata)])

    assert [r.status for r in report.results] == ["failed"]
    assert store.count() == 0
    assert blob_files(blobs) == []


@pytest.mark.parametrize(
    "key", ["exif.camera", "has space", "", "k" * 65, "key\n", "caméra", "a/b", "$where"]
)
def test_metadata_keys_filters_cannot_name_are_refused(key: str, settings: Settings) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_metadata({"ok": 1, key: "value"}, settings.limits)

    message = str(caught.value)
    assert repr(key[:64]) in message
    assert "\n" not in message


def test_metadata_keys_filters_accept_pass_and_nested_keys_are_free(settings: Settings) -> None:
    metadata = {"camera": "x100", "Rating_2-b": 4, "k" * 64: 1, "exif": {"Make.Model": "x"}}

    assert clean_metadata(metadata, settings.limits) == metadata


def test_bad_items_do_not_stop_good_ones(pipeline: IngestPipeline, store: VectorStore) -> None:
    bad = bad_uploads()
    items = [upload(data, name) for name, data in bad.items()]
    items.insert(2, upload(images.jpeg(seed=1), "good1.jpg"))
    items.append(upload(images.jpeg(seed=2), "good2.jpg"))

    report = pipeline.run(items)

    assert len(report.indexed) == 2
    assert sorted(source for source, _ in report.failed) == sorted(bad)
    assert store.count() == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.jpg",
    ],
)
def test_private_urls_fail_as_forbidden_and_change_nothing(
    pipeline: IngestPipeline,
    settings: Settings,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    url: str,
) -> None:
    with UrlFetcher(settings.limits) as fetcher:
        report = pipeline.run([IngestItem.url(fetcher, url)])

    assert isinstance(report.results[0].error, ForbiddenSource)
    assert store.count() == 0
    assert blob_files(blobs) == []


def test_redirect_into_a_private_address_fails_and_changes_nothing(
    pipeline: IngestPipeline, settings: Settings, store: VectorStore, blobs: FilesystemBlobStore
) -> None:
    with local_server() as server:
        server.routes["/go"] = HttpRoute(status=302, headers={"Location": "http://10.0.0.8/a.jpg"})
        policy = AddressPolicy.allowing("127.0.0.1/32")
        with UrlFetcher(settings.limits, policy=policy) as fetcher:
            report = pipeline.run([IngestItem.url(fetcher, server.url("/go"))])

    assert isinstance(report.results[0].error, ForbiddenSource)
    assert store.count() == 0
    assert blob_files(blobs) == []


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink"])
def test_directory_outside_the_roots_is_forbidden_and_changes_nothing(
    settings: Settings,
    tmp_path: Path,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    how: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.jpg").write_bytes(images.jpeg())
    root = settings.allowed_roots[0]
    (root / "link").symlink_to(outside, target_is_directory=True)
    target = {"outside": outside, "dotdot": root / ".." / "outside", "symlink": root / "link"}[how]
    paths = ServerPaths(settings.allowed_roots, settings.limits)

    with pytest.raises(ForbiddenSource):
        items_from_paths(paths, [target])

    assert store.count() == 0
    assert blob_files(blobs) == []


# -- failures after decoding: undone ----------------------------------------------------------


def test_store_refusing_one_point_fails_only_that_item_and_removes_its_blobs(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    data = [images.jpeg(seed=seed) for seed in range(4)]
    poisoned = IngestItem.upload(data[2], "x.jpg")
    bad_sha256 = hashlib.sha256(data[2]).hexdigest()
    failing = FailingStore(store, {bad_sha256[:32]})
    counting = CountingEmbedder(tiny_embedder)
    pipeline = make_pipeline(counting, failing, blobs, settings)  # type: ignore[arg-type]

    report = pipeline.run([upload(data[0]), upload(data[1]), poisoned, upload(data[3])])

    assert [r.status for r in report.results] == ["indexed", "indexed", "failed", "indexed"]
    assert isinstance(report.results[2].error, InvalidInput)
    assert store.count() == 3
    assert not blobs.exists("original", bad_sha256)
    assert not blobs.exists("thumbnail", bad_sha256)
    # One forward pass; the retry upserts the vectors already computed, point by point.
    assert counting.image_batches == [4]
    assert failing.upserts == [4, 1, 1, 1, 1]


class StoreDownAtUpsertTime:
    """Answers every check, then fails inside ``upsert``: the store went away."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner
        self.upserts: list[int] = []

    def upsert(self, points: Sequence[ImagePoint]) -> None:
        self.upserts.append(len(points))
        raise Unavailable("the store went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_store_outage_at_upsert_fails_each_batch_once_and_leaves_nothing(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    down = StoreDownAtUpsertTime(store)
    counting = CountingEmbedder(tiny_embedder)
    pipeline = make_pipeline(counting, down, blobs, settings)  # type: ignore[arg-type]

    report = pipeline.run([upload(images.jpeg(seed=seed), f"{seed}.jpg") for seed in range(6)])

    assert [r.status for r in report.results] == ["failed"] * 6
    assert {reason for _, reason in report.failed} == {"the store went away"}
    assert all(isinstance(r.error, Unavailable) for r in report.results)
    # Batches of 4: each embedded once and upserted once, never retried item by item.
    assert counting.image_batches == [4, 2]
    assert down.upserts == [4, 2]
    assert store.count() == 0
    assert blob_files(blobs) == []


def test_store_going_down_while_retrying_point_by_point_stops_the_retry(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    data = [images.jpeg(seed=seed) for seed in range(4)]
    ids_ = [image_id_of(blob) for blob in data]

    class RefusesThenGoesDown(FailingStore):
        def upsert(self, points: Sequence[ImagePoint]) -> None:
            if len(points) == 1 and points[0].image_id != ids_[0]:
                self.error = Unavailable("the store went away")
            super().upsert(points)

    failing = RefusesThenGoesDown(store, set(ids_[1:]))
    pipeline = make_pipeline(tiny_embedder, failing, blobs, settings)

    report = pipeline.run([upload(blob, f"{i}.jpg") for i, blob in enumerate(data)])

    assert [r.status for r in report.results] == ["indexed", "failed", "failed", "failed"]
    assert all(isinstance(r.error, Unavailable) for r in report.results[1:])
    assert failing.upserts == [4, 1, 1]  # the first point, then the outage: no more tries
    assert store.count() == 1
    assert sorted(Path(name).name for name in blob_files(blobs) if "original" in name) == [
        hashlib.sha256(data[0]).hexdigest()
    ]


def test_embedding_failure_fails_the_batch_without_retrying_image_by_image(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    crashing = CountingEmbedder(tiny_embedder, RuntimeError("out of device memory"))
    pipeline = make_pipeline(crashing, store, blobs, settings)  # type: ignore[arg-type]

    report = pipeline.run([upload(images.jpeg(seed=seed), f"{seed}.jpg") for seed in range(3)])

    assert report.failed == [(f"{seed}.jpg", "internal error: RuntimeError") for seed in range(3)]
    assert crashing.image_batches == [3]
    assert store.count() == 0
    assert blob_files(blobs) == []


class StoreDownAtCheckTime:
    """Answers the per-item checks, then fails the batch's existence check."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner

    def existing(self, image_ids: Sequence[str]) -> set[str]:
        if len(image_ids) > 1:
            raise Unavailable("the store went away")
        return self.inner.existing(image_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_store_outage_at_the_batch_check_ends_the_run_and_leaves_no_blobs(
    tiny_embedder: ClipEmbedder,
    store: VectorStore,
    blobs: FilesystemBlobStore,
    settings: Settings,
) -> None:
    down = StoreDownAtCheckTime(store)
    pipeline = make_pipeline(tiny_embedder, down, blobs, settings)

    with pytest.raises(Unavailable):
        pipeline.run([upload(images.jpeg(seed=seed)) for seed in range(6)])

    assert store.count() == 0
    assert blob_files(blobs) == []


def test_cancelling_from_progress_leaves_no_orphan_blobs(
    pipeline: IngestPipeline, store: VectorStore, blobs: FilesystemBlobStore
) -> None:
    class CancelledError(Exception):
        pass

    def cancel_after_two(done: int, total: int) -> None:
        if done >= 2:
            raise CancelledError

    items = [upload(images.jpeg(seed=seed)) for seed in range(12)]

    with pytest.raises(CancelledError):
        pipeline.run(items, cancel_after_two)

    stored = {payload["sha256"] for payload in (hit.payload for hit in store.scroll())}
    originals = {Path(name).name for name in blob_files(blobs) if name.startswith("original/")}
    assert originals == stored


def test_unexpected_errors_are_reported_not_raised(
    pipeline: IngestPipeline, store: VectorStore
) -> None:
    def explode() -> bytes:
        raise RuntimeError("disk on fire")

    report = pipeline.run([IngestItem("upload", "boom.jpg", explode), upload(images.jpeg())])

    assert [r.status for r in report.results] == ["failed", "indexed"]
    assert report.failed == [("boom.jpg", "internal error: RuntimeError")]
    assert store.count() == 1
