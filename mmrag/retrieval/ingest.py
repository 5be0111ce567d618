"""The ingest pipeline: bytes -> decoded image -> blobs -> vectors -> one point per image.

Two stages overlap. A small thread pool reads, hashes, decodes, thumbnails, stores blobs
and prepares the model input of items *ahead* of the embedder (at most ``ahead`` items in
flight, so memory stays bounded). The calling thread takes prepared items in input order,
embeds them batch by batch and upserts the points. Pillow and torch both release the GIL,
so the forward pass rarely waits for decoding.

Per-item failures never stop a run; they are reported. An item that fails leaves nothing
behind: blobs are written only after decoding succeeded, and removed again if the item
then fails to embed or store (only the blobs this item created: existing ones never change).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.config import Settings
from mmrag.errors import MmragError, Unavailable
from mmrag.models.clip.embedder import Serving
from mmrag.models.clip.preprocess import PreparedImage
from mmrag.models.cpu import usable_cores
from mmrag.retrieval import sparse
from mmrag.retrieval.blobs import BlobKind, BlobStore
from mmrag.retrieval.decode import (
    ThumbnailFormat,
    check_byte_size,
    decode_image,
    image_id_from_sha256,
    make_thumbnail,
    sha256_hex,
)
from mmrag.retrieval.items import (
    ImageInfo,
    IngestItem,
    IngestReport,
    ItemResult,
    ItemStatus,
    ProgressCallback,
    clean_captions,
    clean_metadata,
)
from mmrag.retrieval.provenance import stamp
from mmrag.retrieval.store import ImagePoint, VectorStore

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


class ImageTextEmbedder(Protocol):
    """What ingest needs from an embedder (``ClipEmbedder`` is one)."""

    dim: int
    serving: Serving  # the backend and precision that make the vectors, stored with them

    @property
    def input_size(self) -> tuple[int, int]: ...

    def load(self) -> None: ...

    def prepare_image(self, image: Image.Image) -> PreparedImage: ...

    def embed_prepared(self, prepared: Sequence[PreparedImage]) -> Vectors: ...

    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int = 32
    # Decode threads; 0: one per usable core. More would only queue for the same cores (the
    # embedder's runtime uses them all), and hold more decoded images in memory.
    workers: int = 0
    # Decode threads run at this nice level (Linux: per thread). Not lowered by default: with
    # a fast embedder (ONNX Runtime int8, whose threads spin while they wait) decode threads
    # at nice 10 got a tenth of the cores during each forward pass, so the next batch was
    # decoded while the embedder waited. bench/ingest_throughput, 2 cores with AVX-512 VNNI:
    # ratio to the pure embedding rate 0.81 at nice 0 against 0.74 at nice 10 (median of 6
    # rounds each, alternating); torch fp32 the same either way (0.92-1.04).
    decode_nice: int = 0
    ahead: int = 0  # items prepared ahead of the embedder; 0: two batches
    thumbnail_px: int = 256
    thumbnail_format: ThumbnailFormat = "JPEG"
    # Let JPEGs decode at 1/2..1/8 scale when that still covers the model input and the
    # thumbnail: several times less decode work, same vectors to within resampling noise.
    reduced_decode: bool = True

    @property
    def window(self) -> int:
        return self.ahead or 2 * self.batch_size


def utc_now() -> datetime:
    return datetime.now(UTC)


class IngestPipeline:
    """Turns :class:`IngestItem` s into points, blobs and an :class:`IngestReport`."""

    def __init__(
        self,
        embedder: ImageTextEmbedder,
        store: VectorStore,
        blobs: BlobStore,
        settings: Settings,
        options: IngestOptions | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.blobs = blobs
        self.limits = settings.limits
        self.options = options or IngestOptions(
            batch_size=settings.models.batch_size, thumbnail_px=settings.limits.thumbnail_px
        )
        self.clock = clock
        # What made the vectors, on every point (retrieval/provenance.py).
        self._stamp = stamp(settings.embedder_spec, embedder.dim)
        self._ready = False
        self._ready_lock = threading.Lock()

    def run(
        self, items: Sequence[IngestItem], progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Ingest every item; never raises for a single item's failure.

        ``progress`` is called in this thread after each item is settled. An exception it
        raises ends the run (that is how a caller cancels): items not yet stored are
        dropped and their blobs removed, and the exception propagates.
        """
        started = time.perf_counter()
        self._ensure_ready()
        run = _Run(self, len(items), progress)
        pool = ThreadPoolExecutor(
            self.options.workers or usable_cores(),
            thread_name_prefix="ingest-decode",
            initializer=_lower_thread_priority,
            initargs=(self.options.decode_nice,),
        )
        pending: deque[Future[_Outcome]] = deque()
        queue = iter(enumerate(items))

        def top_up() -> None:
            while len(pending) < self.options.window:
                upcoming = next(queue, None)
                if upcoming is None:
                    return
                pending.append(pool.submit(self._prepare, *upcoming))

        try:
            top_up()
            while pending:
                outcome = pending.popleft().result()
                top_up()  # keep the decode threads busy while this thread embeds
                run.accept(outcome)
                if len(run.batch) >= self.options.batch_size:
                    self._flush(run)
            self._flush(run)
        except BaseException:
            self._abandon(run, pending)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        report = IngestReport(run.final_results(), time.perf_counter() - started)
        log.info(
            "ingest: %d indexed, %d duplicates, %d failed in %.1f s",
            len(report.indexed),
            len(report.duplicates),
            len(report.failed),
            report.elapsed_s,
        )
        return report

    # -- stage 1: decode threads -----------------------------------------------------------

    def _prepare(self, index: int, item: IngestItem) -> _Outcome:
        try:
            return self._prepare_item(index, item)
        except MmragError as error:
            return _Failed(index, item, error)
        except Exception as error:  # one bad item must not end the run; keep its trace
            log.exception("ingest of %s failed unexpectedly", item.uri)
            return _Failed(index, item, MmragError(f"internal error: {type(error).__name__}"))

    def _prepare_item(self, index: int, item: IngestItem) -> _Outcome:
        captions = clean_captions(item.captions, self.limits)
        metadata = clean_metadata(item.metadata, self.limits)
        data = item.read()
        check_byte_size(len(data), self.limits)
        digest = sha256_hex(data)
        image_id = image_id_from_sha256(digest)
        if self.store.existing([image_id]) and self._blobs_complete(digest):
            return _Known(index, item, image_id)  # no decode work for a re-run over a folder
        # New bytes, or a stored image whose blobs went missing: the steps below write them
        # again, and the store check before upserting reports the image as a duplicate.
        decoded = decode_image(data, self.limits, at_least=self._decode_floor())
        thumbnail = make_thumbnail(
            decoded.image, self.options.thumbnail_px, self.options.thumbnail_format
        )
        prepared = self.embedder.prepare_image(decoded.image)
        # Blobs last: an item that fails to decode leaves nothing on disk.
        blobs: tuple[tuple[BlobKind, bytes], ...] = (("original", data), ("thumbnail", thumbnail))
        created: tuple[BlobKind, ...] = ()
        try:
            for kind, blob in blobs:
                if self.blobs.put(kind, digest, blob):
                    created += (kind,)
        except BaseException:
            # The original without its thumbnail (a full disk): nothing half-stored stays.
            self.blobs.delete(digest, created)
            raise
        info = ImageInfo(
            image_id=image_id,
            sha256=digest,
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            byte_size=decoded.byte_size,
            created="",  # stamped when the point is built
        )
        return _Prepared(index, item, info, prepared, captions, metadata, created)

    def _blobs_complete(self, sha256: str) -> bool:
        return self.blobs.exists("original", sha256) and self.blobs.exists("thumbnail", sha256)

    def _decode_floor(self) -> tuple[int, int] | None:
        if not self.options.reduced_decode:
            return None
        return decode_floor(self.embedder.input_size, self.options.thumbnail_px)

    # -- stage 2: this thread --------------------------------------------------------------

    def _flush(self, run: _Run) -> None:
        batch = run.batch
        if not batch:
            return
        already = self.store.existing([prepared.info.image_id for prepared in batch])
        fresh = [prepared for prepared in batch if prepared.info.image_id not in already]
        settled: list[_Settled] = []
        for prepared in batch:
            if prepared.info.image_id in already:  # another run stored it meanwhile
                payload = self.store.get([prepared.info.image_id]).get(prepared.info.image_id)
                info = ImageInfo.from_payload(payload) if payload else prepared.info
                settled.append((prepared, "duplicate", info, None))
        settled.extend(self._store_fresh(fresh))
        # Everything in the batch is stored or undone: reported only now, so a progress
        # callback that cancels the run finds nothing half-done.
        run.batch = []
        for prepared, status, image, failure in settled:
            run.finish(prepared.index, status, image, failure)

    def _store_fresh(self, fresh: list[_Prepared]) -> list[_Settled]:
        """Embed the batch once and upsert its points; what became of each item.

        A failure to embed, or the store being unavailable, fails the whole batch: trying
        again image by image would only repeat it (a forward pass per image, for nothing).
        Any other upsert error may be one point's fault, so the points already built are
        upserted one by one to find it.
        """
        if not fresh:
            return []
        try:
            points = self._points(fresh)
        except Exception as error:
            return self._fail_all(fresh, error, "embedding")
        try:
            self.store.upsert(points)
        except Unavailable as error:
            return self._fail_all(fresh, error, "storing")
        except Exception as error:
            if len(points) == 1:
                return self._fail_all(fresh, error, "storing")
            log.warning("batch of %d failed (%s); storing it point by point", len(fresh), error)
            return self._upsert_one_by_one(fresh, points)
        return [(prepared, "indexed", prepared.info, None) for prepared in fresh]

    def _upsert_one_by_one(
        self, fresh: list[_Prepared], points: list[ImagePoint]
    ) -> list[_Settled]:
        settled: list[_Settled] = []
        for position, (prepared, point) in enumerate(zip(fresh, points, strict=True)):
            try:
                self.store.upsert([point])
            except Unavailable as error:  # the store went away meanwhile: stop trying
                return settled + self._fail_all(fresh[position:], error, "storing")
            except Exception as error:
                settled.append((prepared, "failed", None, self._undo(prepared, error)))
            else:
                settled.append((prepared, "indexed", prepared.info, None))
        return settled

    def _points(self, batch: list[_Prepared]) -> list[ImagePoint]:
        """One point per item; the batch's single forward pass (images, then captions)."""
        image_vectors = self.embedder.embed_prepared([prepared.pixels for prepared in batch])
        text_vectors = self._caption_vectors(batch)
        made_by = self.embedder.serving.as_payload()
        points = []
        for prepared, image_vector in zip(batch, image_vectors, strict=True):
            captions = prepared.captions
            points.append(
                ImagePoint(
                    image_id=prepared.info.image_id,
                    image_vector=image_vector,
                    payload={**_payload(prepared), **self._stamp, "embedding": made_by},
                    text_vector=text_vectors.get(prepared.index),
                    sparse=sparse.encode_document(captions) if captions else None,
                )
            )
        return points

    def _caption_vectors(self, batch: list[_Prepared]) -> dict[int, Vectors]:
        """One text vector per captioned item: the normalised mean of its captions'
        vectors (CLIP reads 77 tokens, so joining long captions would cut them)."""
        texts = [caption for prepared in batch for caption in prepared.captions]
        if not texts:
            return {}
        vectors = self.embedder.embed_texts(texts)
        result: dict[int, Vectors] = {}
        start = 0
        for prepared in batch:
            count = len(prepared.captions)
            if count:
                mean = vectors[start : start + count].mean(axis=0)
                result[prepared.index] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(
                    np.float32
                )
                start += count
        return result

    def _undo(self, prepared: _Prepared, error: Exception) -> MmragError:
        """Remove the blobs a failed item wrote; the error as the report shows it."""
        self._drop_blobs([prepared])
        return _reported(error, f"storing {prepared.item.uri}")

    def _fail_all(self, batch: list[_Prepared], error: Exception, step: str) -> list[_Settled]:
        """Fail every item of ``batch`` with one error (logged once), removing their blobs."""
        if isinstance(error, MmragError):  # _reported logs the unexpected ones, with trace
            log.warning("%s a batch of %d failed: %s", step, len(batch), error)
        self._drop_blobs(batch)
        reported = _reported(error, f"{step} a batch of {len(batch)}")
        return [(prepared, "failed", None, reported) for prepared in batch]

    def _drop_blobs(self, prepared: Sequence[_Prepared]) -> None:
        for item in prepared:
            if item.created_blobs:
                self.blobs.delete(item.info.sha256, item.created_blobs)

    def _abandon(self, run: _Run, pending: deque[Future[_Outcome]]) -> None:
        """Undo the blobs of items prepared but never stored (the run is ending early)."""
        for future in pending:
            future.cancel()
        unstored = run.unsettled()
        for future in pending:
            if not future.cancelled():
                outcome = future.result()  # _prepare never raises
                if isinstance(outcome, _Prepared):
                    unstored.append(outcome)
        self._drop_blobs(unstored)

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self.embedder.load()
                self.store.ensure_collection(self.embedder.dim)
                self._ready = True


# -- outcomes of stage 1 -------------------------------------------------------------------


@dataclass(frozen=True)
class _Failed:
    index: int
    item: IngestItem
    error: MmragError


@dataclass(frozen=True)
class _Known:
    """Bytes whose image is already in the store."""

    index: int
    item: IngestItem
    image_id: str


@dataclass
class _Prepared:
    index: int
    item: IngestItem
    info: ImageInfo
    pixels: PreparedImage
    captions: list[str]
    metadata: dict[str, Any]
    created_blobs: tuple[BlobKind, ...]  # the blobs this item wrote (undone on failure)


_Outcome = _Failed | _Known | _Prepared
_Settled = tuple[_Prepared, ItemStatus, ImageInfo | None, MmragError | None]


def _reported(error: Exception, what: str) -> MmragError:
    """The error as the report shows it; an unexpected one keeps its trace in the log."""
    if isinstance(error, MmragError):
        return error
    log.error("%s failed", what, exc_info=error)
    return MmragError(f"internal error: {type(error).__name__}")


def _payload(prepared: _Prepared) -> dict[str, Any]:
    info, item = prepared.info, prepared.item
    return {
        "id": info.image_id,
        "sha256": info.sha256,
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "bytes": info.byte_size,
        "created": info.created,
        "source": {"kind": item.kind, "uri": item.uri},
        "captions": list(prepared.captions),
        "caption": prepared.captions[0] if prepared.captions else "",
        "labels": [],
        "metadata": prepared.metadata,
    }


# -- bookkeeping of one run ----------------------------------------------------------------


@dataclass
class _Run:
    """Results, the current batch, in-run duplicates and progress; used by one thread."""

    pipeline: IngestPipeline
    total: int
    progress: ProgressCallback | None
    batch: list[_Prepared] = field(default_factory=list)
    results: dict[int, ItemResult] = field(default_factory=dict)
    items: dict[int, IngestItem] = field(default_factory=dict)
    # image id -> index of its first item in this run; that index -> later items, same bytes
    claimed: dict[str, int] = field(default_factory=dict)
    twins: dict[int, list[_Prepared]] = field(default_factory=dict)

    def accept(self, outcome: _Outcome) -> None:
        self.items[outcome.index] = outcome.item
        match outcome:
            case _Failed(index=index, error=error):
                self.finish(index, "failed", error=error)
            case _Known(index=index, image_id=image_id):
                payload = self.pipeline.store.get([image_id]).get(image_id)
                if payload is None:  # deleted since the check: rare, and the caller may retry
                    self.finish(index, "failed", error=MmragError("image deleted while indexed"))
                else:
                    self.finish(index, "duplicate", ImageInfo.from_payload(payload))
            case _Prepared(index=index, info=info):
                first = self.claimed.get(info.image_id)
                if first is None:
                    self.claimed[info.image_id] = index
                    outcome.info = replace(info, created=_iso(self.pipeline.clock()))
                    self.batch.append(outcome)
                elif first in self.results:  # its twin was settled already
                    result = self.results[first]
                    self._settle_twin(outcome, result.status, result.image, result.error)
                    self._report()
                else:  # same bytes twice in one run: the later one shares the first one's fate
                    self.twins.setdefault(first, []).append(outcome)

    def finish(
        self,
        index: int,
        status: ItemStatus,
        image: ImageInfo | None = None,
        error: MmragError | None = None,
    ) -> None:
        item = self.items[index]
        self.results[index] = ItemResult(item.kind, item.uri, status, image, error)
        for twin in self.twins.pop(index, []):
            self._settle_twin(twin, status, image, error)
        self._report()

    def unsettled(self) -> list[_Prepared]:
        """Prepared items not stored yet, twins included."""
        waiting = [twin for twins in self.twins.values() for twin in twins]
        return [*self.batch, *waiting]

    def final_results(self) -> list[ItemResult]:
        return [self.results[index] for index in sorted(self.results)]

    def _settle_twin(
        self,
        twin: _Prepared,
        status: ItemStatus,
        image: ImageInfo | None,
        error: MmragError | None,
    ) -> None:
        if status == "failed":
            # Its decode thread may have won the race to write the shared blobs.
            self.pipeline._drop_blobs([twin])
        twin_status: ItemStatus = "failed" if status == "failed" else "duplicate"
        self.results[twin.index] = ItemResult(
            twin.item.kind, twin.item.uri, twin_status, image, error
        )

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(len(self.results), self.total)


def decode_floor(input_size: tuple[int, int], thumbnail_px: int) -> tuple[int, int]:
    """``(longest, shortest)`` side in pixels that a reduced decode must keep for the model
    input (of ``input_size``) and the thumbnail."""
    shortest = max(input_size)  # prepare_image fills the input: its shorter side
    return (max(thumbnail_px, shortest), shortest)


def _lower_thread_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux sets it per thread; lowering needs no rights)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as error:  # not permitted here, or not per-thread: run at normal priority
        log.debug("cannot renice decode thread: %s", error)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
