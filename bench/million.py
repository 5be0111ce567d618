"""The edge store at a million images: fill, background HNSW build, search, memory, reopen.

    .venv/bin/python -m bench.million --points 1000000 --quantization int8 --on-disk-vectors

``--points N`` images (an image vector and a caption vector each, 512-d, with a payload)
go into an ``EdgeVectorStore`` through ``upsert``, the service's own write path. Then:

1. ``store.optimize()`` builds HNSW in its child process while this process searches at a
   steady 20/s (what the service does meanwhile: every search is a scan of the unindexed
   shard): build time, search latency during it, the longest stall;
2. the store is closed and a fresh process (``--serve``) opens it, as the API does after a
   restart: the reopen time, then top-10 searches of the image vector (no filter, a tenant
   filter of ~10 % of the points, a topic label of ~1.5 %) and of the caption vector, for
   each ``--ef`` (the store's ``hnsw.ef_search``), with recall@10 against exact top-10 from
   numpy over every vector, and the process's resident memory (anonymous and file-backed).

Synthetic vectors (made in chunks from a seed, so the corpus is never held in memory at
once): like bench/search_latency, a modality mean + a concept direction (one of 2,048
concepts under 64 topics, Zipf-like popularity) + per-item noise, normalised; the caption
vector shares its image's concept (cosine ~0.5 to it), queries are caption-like vectors of a
random concept. HNSW recall on uniform noise says nothing; on clustered data it is lower and
closer to what real CLIP embeddings give.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import emit, percentiles_ms
from bench.concept_space import DIM, ConceptSpace, Matrix
from mmrag.config import HnswSettings, StoreSettings
from mmrag.models.cpu import usable_cores
from mmrag.retrieval.indexing import IndexBacklog, IndexScheduler, merge_due
from mmrag.retrieval.store import (
    DenseVectorName,
    Filter,
    ImagePoint,
    MatchAny,
    MatchValue,
    NumberRange,
)
from mmrag.retrieval.store_edge import EdgeVectorStore

log = logging.getLogger("bench.million")

TENANTS = 10
CHUNK = 20_000
TOP = 10
NOW = {"merge_after_idle_s": 0.0}  # "would a merge be due": whatever the quiet spell


@dataclass
class Chunk:
    start: int
    images: Matrix
    captions: Matrix
    topic: npt.NDArray[np.int64]
    tenant: npt.NDArray[np.int64]


class Corpus:
    """Embedding-like vectors, generated chunk by chunk from ``seed``."""

    def __init__(self, size: int, queries: int, seed: int = 0) -> None:
        self.size = size
        self._seed = seed
        rng = np.random.default_rng(seed)
        self._space = ConceptSpace.draw(rng)
        query_concept = self._space.pick(rng, queries)
        self.queries = self._space.embed(rng, self._space.text_mean, query_concept, 0.9)
        self.query_topic = self._space.concept_topic[query_concept]
        self.query_tenant = rng.integers(0, TENANTS, queries)

    def chunks(self) -> Iterator[Chunk]:
        for start in range(0, self.size, CHUNK):
            rng = np.random.default_rng((self._seed, start))
            count = min(CHUNK, self.size - start)
            space = self._space
            concept = space.pick(rng, count)
            yield Chunk(
                start,
                space.embed(rng, space.image_mean, concept, 0.8),
                space.embed(rng, space.text_mean, concept, 0.9),
                space.concept_topic[concept],
                rng.integers(0, TENANTS, count),
            )


def point_id(index: int) -> str:
    return f"{index:032x}"


def width_of(index: Any) -> Any:
    """Seven widths, 640 to 1600 px, in turn (an int, or an array of them for an array)."""
    return 640 + index % 7 * 160


WIDEST = 1600


def points_of(chunk: Chunk) -> list[ImagePoint]:
    return [
        ImagePoint(
            point_id(chunk.start + i),
            chunk.images[i],
            {
                "tenant": f"tenant{chunk.tenant[i]}",
                "labels": [f"topic{chunk.topic[i]}"],
                "width": int(width_of(chunk.start + i)),
            },
            text_vector=chunk.captions[i],
        )
        for i in range(len(chunk.images))
    ]


# -- exact top-10, kept as the chunks go by ----------------------------------------------------

# (name, vector searched, filter for query q, the chunk's rows that filter keeps)
Case = tuple[
    str,
    DenseVectorName,
    Callable[[int], Filter | None],
    Callable[[Chunk, int], npt.NDArray[np.bool_] | None],
]


def cases(corpus: Corpus) -> list[Case]:
    return [
        ("image_no_filter", "image", lambda q: None, lambda c, q: None),
        (
            "image_filter_tenant",
            "image",
            lambda q: Filter(must=(MatchValue("tenant", f"tenant{corpus.query_tenant[q]}"),)),
            lambda c, q: c.tenant == corpus.query_tenant[q],
        ),
        (
            "image_filter_topic",
            "image",
            lambda q: Filter(must=(MatchAny("labels", (f"topic{corpus.query_topic[q]}",)),)),
            lambda c, q: c.topic == corpus.query_topic[q],
        ),
        (
            # A field without per-value graphs (FILTER_GRAPH_FIELDS): ~14 % of the points.
            "image_filter_width",
            "image",
            lambda q: Filter(must=(NumberRange("width", gte=WIDEST),)),
            lambda c, q: width_of(np.arange(c.start, c.start + len(c.images))) >= WIDEST,
        ),
        ("caption_no_filter", "text", lambda q: None, lambda c, q: None),
    ]


class ExactTop:
    """Exact top-10 ids per query and case, merged chunk by chunk (numpy, every vector)."""

    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus
        self._cases = cases(corpus)
        queries = len(corpus.queries)
        self.scores = {name: np.full((queries, TOP), -np.inf) for name, *_ in self._cases}
        self.ids = {name: np.full((queries, TOP), -1, dtype=np.int64) for name, *_ in self._cases}

    def add(self, chunk: Chunk) -> None:
        by_vector = {
            "image": chunk.images @ self._corpus.queries.T,
            "text": chunk.captions @ self._corpus.queries.T,
        }
        rows = np.arange(chunk.start, chunk.start + len(chunk.images))
        for name, using, _filter, mask_of in self._cases:
            scores = by_vector[using]
            for q in range(len(self._corpus.queries)):
                column = scores[:, q]
                mask = mask_of(chunk, q)
                if mask is not None:
                    column = np.where(mask, column, -np.inf)
                merged_scores = np.concatenate([self.scores[name][q], column])
                merged_ids = np.concatenate([self.ids[name][q], rows])
                best = np.argpartition(-merged_scores, TOP)[:TOP]
                self.scores[name][q] = merged_scores[best]
                self.ids[name][q] = merged_ids[best]

    def save(self, path: Path) -> None:
        # numpy's stub types the keyword arrays like its allow_pickle flag.
        np.savez(path, **self.ids)  # type: ignore[arg-type]


# -- memory ------------------------------------------------------------------------------------


def memory_mib() -> dict[str, float]:
    """This process's resident memory: anonymous (heap, int8 copies, graphs) and file-backed
    (mmapped vector files in the page cache, which the kernel can drop), and the peak.

    RSS counts a file page once per mapping: while a swap has both the live shard and its
    rebuilt copy open, the files the copy hard-links count twice though they sit in RAM
    once. PSS counts them once (and shares a page with other processes), so it is what the
    machine really gives this process."""
    fields = _kib_fields("/proc/self/status", ("VmRSS", "RssAnon", "RssFile", "VmHWM"))
    fields |= _kib_fields("/proc/self/smaps_rollup", ("Pss", "Pss_File", "AnonHugePages"))
    return {
        "rss_mib": fields.get("VmRSS", 0.0),
        "rss_anon_mib": fields.get("RssAnon", 0.0),
        "rss_file_mib": fields.get("RssFile", 0.0),
        "peak_rss_mib": fields.get("VmHWM", 0.0),
        "pss_mib": fields.get("Pss", 0.0),
        "pss_file_mib": fields.get("Pss_File", 0.0),
        "anon_huge_pages_mib": fields.get("AnonHugePages", 0.0),
    }


def _kib_fields(path: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The ``keys`` of a /proc file of "Key: N kB" lines, in MiB (none where it is missing)."""
    fields = {}
    try:
        with open(path) as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key in keys:
                    fields[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:  # smaps_rollup: Linux 4.14 and later
        pass
    return fields


class MemorySampler:
    """The highest resident memory seen, sampled every ``interval_s`` in a thread."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.highest: dict[str, float] = {}

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for key, value in memory_mib().items():
                self.highest[key] = max(self.highest.get(key, 0.0), value)


def reset_peak() -> None:
    """Start the peak (VmHWM) over from the current RSS (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log.warning("cannot reset the peak RSS: the peaks cover the whole run")


def disk_mib(path: Path) -> float:
    """Allocated bytes (holes in the mmap files not counted)."""
    total = sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
    return round(total / 2**20, 1)


# -- the store ---------------------------------------------------------------------------------


def settings_of(
    args: argparse.Namespace, ef_search: int, oversampling: float | None = None
) -> StoreSettings:
    return StoreSettings(
        hnsw=HnswSettings(
            m=args.m,
            ef_construct=args.ef_construct,
            ef_search=ef_search,
            acorn_ef_search=args.acorn_ef,
            payload_m=args.payload_m,
            max_unindexed=args.max_unindexed,
            merge_after_idle_s=args.merge_after_idle_s,
        ),
        quantization=args.quantization,
        oversampling=args.oversampling[0] if oversampling is None else oversampling,
        on_disk_vectors=args.on_disk_vectors,
        quantized_in_ram=not args.quantized_on_disk,
        huge_pages=not args.no_huge_pages,
    )


def open_store(directory: Path, settings: StoreSettings) -> EdgeVectorStore:
    store = EdgeVectorStore(directory, settings)
    try:
        store.ensure_collection(DIM)
    except BaseException:
        store.close()
        raise
    return store


def searches_during(
    store: EdgeVectorStore, queries: Matrix, work: Callable[[], Any], interval_s: float
) -> dict[str, Any]:
    """Run ``work`` in a thread; search every ``interval_s`` until it ends (a service
    answering queries, not a loop that takes the CPU from the niced build)."""
    done = threading.Event()
    outcome: list[Any] = []
    peak_rss = [0.0]

    def run() -> None:
        try:
            outcome.append(work())
        finally:
            done.set()

    samples: list[float] = []
    worker = threading.Thread(target=run)
    started = time.perf_counter()
    worker.start()
    q = 0
    while not done.wait(interval_s):
        begin = time.perf_counter()
        store.search(queries[q % len(queries)], "image", TOP)
        samples.append(time.perf_counter() - begin)
        if q % 20 == 0:
            peak_rss[0] = max(peak_rss[0], memory_mib()["rss_mib"])
        q += 1
    worker.join()
    return {
        "work_s": round(time.perf_counter() - started, 1),
        "searches": len(samples),
        **percentiles_ms(samples or [0.0]),
        "max_ms": round(max(samples or [0.0]) * 1000, 1),
        "sampled_peak_rss_mib": peak_rss[0],
    }


def fill(
    store: EdgeVectorStore,
    corpus: Corpus,
    exact: ExactTop,
    wrote: Callable[[int], None] | None = None,
) -> float:
    """Upsert the whole corpus 1,000 points a call, telling ``wrote`` of each call; returns
    the seconds spent in upsert."""
    upsert_s = 0.0
    for chunk in corpus.chunks():
        points = points_of(chunk)
        began = time.perf_counter()
        for lo in range(0, len(points), 1000):
            batch = points[lo : lo + 1000]
            store.upsert(batch)
            if wrote is not None:
                wrote(len(batch))
        upsert_s += time.perf_counter() - began
        exact.add(chunk)
        done = chunk.start + len(points)
        if done % 100_000 == 0 or done == corpus.size:
            log.info(
                "%d points in, %.0f points/s; %s", done, done / upsert_s, store.index_backlog()
            )
    return upsert_s


def fill_and_build(args: argparse.Namespace, directory: Path, truth_path: Path) -> dict[str, Any]:
    corpus = Corpus(args.points, args.queries, seed=args.seed)
    exact = ExactTop(corpus)
    store = open_store(directory, settings_of(args, args.ef[0]))
    reset_peak()
    try:
        upsert_s = fill(store, corpus, exact)
        exact.save(truth_path)
        filled = memory_mib()
        log.info("filled: %s; building while searching", filled)
        reset_peak()
        # Past --build-timeout the build is cancelled (its child killed): the figures so far
        # are reported and the store is served unindexed.
        deadline = threading.Timer(args.build_timeout, store.cancel_optimize)
        deadline.start()
        try:
            during = searches_during(store, corpus.queries, store.optimize, args.during_interval)
        finally:
            deadline.cancel()
        build = store.last_build
        log.info("built: %s", build)
        building = memory_mib()
        info = store.info()
    finally:
        store.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "upsert_points_per_s": round(args.points / upsert_s),
        "memory_after_fill": filled,
        "build": None if build is None else asdict(build),
        "build_total_s": None
        if build is None
        else round(build.copy_s + build.build_s + build.swap_s, 1),
        # CPU seconds the build child used: on shared cores, build_s / this shows the share
        # it got, and this / cores the wall time an idle machine would take. (Its peak RSS is
        # not reported: ru_maxrss of children counts the parent's pages at the fork.)
        "build_child_cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "during_build_searches": during,
        "memory_during_build": building,
        "indexed_vectors": info.indexed_vectors,
        "segments": info.segments,
    }


def fill_while_building(
    args: argparse.Namespace, directory: Path, truth_path: Path
) -> dict[str, Any]:
    """The service's bulk fill: upserts as fast as they go while its IndexScheduler builds,
    until the index has caught up. The highest RSS of the whole fill is the figure."""
    corpus = Corpus(args.points, args.queries, seed=args.seed)
    exact = ExactTop(corpus)
    settings = settings_of(args, args.ef[0])
    store = open_store(directory, settings)
    scheduler = IndexScheduler(store, settings.hnsw)
    fill_s: list[float] = []
    marks: dict[str, float] = {}  # seconds from the first write

    def fill_then_catch_up() -> None:
        began = time.perf_counter()
        fill(store, corpus, exact, scheduler.notify_write)
        fill_s.append(time.perf_counter() - began)
        deadline = time.monotonic() + args.build_timeout

        def wait_until(done: Callable[[IndexBacklog], bool], what: str) -> None:
            while not done(store.index_backlog()) or store.info().extra["build_phase"] != "idle":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} did not happen within --build-timeout")
                time.sleep(0.5)
            marks[what] = round(time.perf_counter() - began, 1)

        # Caught up: what is left is under the scheduler's threshold, and no build runs; then
        # merged: the quiet spell's merge of the graphs the fill left.
        wait_until(lambda b: b.unindexed_points < settings.hnsw.rebuild_after, "caught_up")
        wait_until(lambda b: not merge_due(b, settings.hnsw.model_copy(update=NOW)), "merged")

    reset_peak()
    try:
        scheduler.start()
        with MemorySampler() as sampler:
            during = searches_during(
                store, corpus.queries, fill_then_catch_up, args.during_interval
            )
        exact.save(truth_path)
        build, caught_up = store.last_build, memory_mib()
        info = store.info()
    finally:
        scheduler.stop()
        store.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "max_unindexed": settings.hnsw.max_unindexed,
        "fill_s": round(fill_s[0], 1),
        "caught_up_s": marks.get("caught_up"),
        "merged_s": marks.get("merged"),
        "last_build": None if build is None else asdict(build),
        "upsert_points_per_s": round(args.points / fill_s[0]),
        "builds": scheduler.builds,
        # from the first write until the index holds all but a scheduler's threshold
        "fill_and_index_s": during["work_s"],
        "build_child_cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "during_build_searches": during,
        "highest_memory_sampled": sampler.highest,
        "memory_when_caught_up": caught_up,
        "indexed_vectors": info.indexed_vectors,
        "segments": info.segments,
    }


# -- after a restart: a fresh process opens the store --------------------------------------------


def recall(got: list[list[str]], truth: npt.NDArray[np.int64]) -> float:
    found = total = 0
    for q, ids in enumerate(got):
        expected = {point_id(int(i)) for i in truth[q] if i >= 0}
        found += len(expected & set(ids))
        total += len(expected)
    return round(found / max(total, 1), 4)


def serve(args: argparse.Namespace, directory: Path, truth_path: Path) -> dict[str, Any]:
    """What the API process sees after a restart; run in a fresh process."""
    corpus = Corpus(0, args.queries, seed=args.seed)
    truth = np.load(truth_path)
    queries = min(args.serve_queries or args.queries, args.queries)
    out: dict[str, Any] = {"memory_before_open": memory_mib(), "by_ef": {}}
    # Every combination is a reopen: both are settings the store reads at start.
    combos = [(ef, over) for ef in args.ef for over in args.oversampling]
    for n, (ef, over) in enumerate(combos):
        began = time.perf_counter()
        store = open_store(directory, settings_of(args, ef, over))
        opened = time.perf_counter() - began
        if n == 0:
            out["reopen_s"] = round(opened, 2)
            out["memory_after_open"] = memory_mib()
        try:
            runs: dict[str, Any] = {"open_s": round(opened, 2)}
            for name, using, filter_of, _mask in cases(corpus):
                for warm in (True, False):  # the first pass brings the touched pages in
                    samples: list[float] = []
                    got: list[list[str]] = []
                    for q in range(queries):
                        started = time.perf_counter()
                        hits = store.search(corpus.queries[q], using, TOP, filter=filter_of(q))
                        samples.append(time.perf_counter() - started)
                        got.append([hit.image_id for hit in hits])
                    if warm:
                        first = percentiles_ms(samples)
                runs[name] = {
                    **percentiles_ms(samples),
                    "first_pass_p50_ms": first["p50_ms"],
                    "first_pass_p99_ms": first["p99_ms"],
                    "recall_at_10": recall(got, truth[name][:queries]),
                }
            runs["memory_after_searches"] = memory_mib()
            out["by_ef"][combo_name(args, ef, over)] = runs
        finally:
            store.close()
    return out


def combo_name(args: argparse.Namespace, ef: int, oversampling: float) -> str:
    """ "64" for ef_search 64; "64/4" with oversampling 4 when more than one is swept."""
    return str(ef) if len(args.oversampling) == 1 else f"{ef}/{oversampling:g}"


def serve_in_child(
    args: argparse.Namespace, directory: Path, truth_path: Path, queries: int
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.million", "--serve", str(directory), str(truth_path)]
    command += [*_forwarded(args), "--serve-queries", str(queries)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"serve process failed: {result.stderr[-2000:]}")
    served: dict[str, Any] = json.loads(result.stdout)
    return served


def _forwarded(args: argparse.Namespace) -> list[str]:
    forwarded = [
        "--points",
        str(args.points),
        "--queries",
        str(args.queries),
        "--seed",
        str(args.seed),
        "--m",
        str(args.m),
        "--ef-construct",
        str(args.ef_construct),
        "--quantization",
        args.quantization,
        "--oversampling",
        *map(str, args.oversampling),
        "--ef",
        *map(str, args.ef),
        "--acorn-ef",
        str(args.acorn_ef),
    ]
    if args.payload_m is not None:
        forwarded += ["--payload-m", str(args.payload_m)]
    if args.on_disk_vectors:
        forwarded.append("--on-disk-vectors")
    if args.quantized_on_disk:
        forwarded.append("--quantized-on-disk")
    if args.no_huge_pages:
        forwarded.append("--no-huge-pages")
    return forwarded


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--m", type=int, default=HnswSettings().m)
    parser.add_argument("--ef-construct", type=int, default=HnswSettings().ef_construct)
    parser.add_argument("--payload-m", type=int, default=None)
    parser.add_argument(
        "--ef", type=int, nargs="+", default=[HnswSettings().ef_search], help="hnsw.ef_search"
    )
    parser.add_argument(
        "--acorn-ef",
        type=int,
        default=HnswSettings().acorn_ef_search,
        help="hnsw.acorn_ef_search: searches filtered on a field without per-value graphs",
    )
    parser.add_argument("--quantization", choices=["none", "int8"], default="none")
    parser.add_argument(
        "--oversampling",
        type=float,
        nargs="+",
        default=[StoreSettings().oversampling],
        help="int8 rescoring: candidates rescored per result",
    )
    parser.add_argument("--on-disk-vectors", action="store_true")
    parser.add_argument(
        "--quantized-on-disk",
        action="store_true",
        help="store.quantized_in_ram false: the int8 copies read through the page cache",
    )
    parser.add_argument(
        "--no-huge-pages",
        action="store_true",
        help="store.huge_pages false: the loaded shard stays on 4 KiB pages",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the store goes")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the store and its exact top-10s for later --serve runs (their paths are logged)",
    )
    parser.add_argument(
        "--during-interval", type=float, default=0.5, help="seconds between searches in a build"
    )
    parser.add_argument(
        "--build-timeout", type=float, default=3600.0, help="cancel the build after this long"
    )
    parser.add_argument(
        "--fill-while-building",
        action="store_true",
        help="fill with the service's index scheduler running (builds during the fill)",
    )
    parser.add_argument(
        "--max-unindexed",
        type=int,
        default=HnswSettings().max_unindexed,
        help="hnsw.max_unindexed: writes wait for the running build past this many",
    )
    parser.add_argument(
        "--merge-after-idle-s",
        type=float,
        default=HnswSettings().merge_after_idle_s,
        help="hnsw.merge_after_idle_s: the quiet spell before the graphs are merged",
    )
    parser.add_argument("--serve", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-queries", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.serve:
        json.dump(serve(args, *args.serve), sys.stdout)
        return
    workdir = Path(tempfile.mkdtemp(prefix="mmrag-million-", dir=args.workdir))
    try:
        directory, truth_path = workdir / "store", workdir / "truth.npz"
        fill = fill_while_building if args.fill_while_building else fill_and_build
        built = fill(args, directory, truth_path)
        disk = disk_mib(directory)
        log.info("serving from a fresh process")
        # Unindexed (a cancelled build), every search is a scan: fewer of them.
        queries = args.queries if built.get("build", True) else min(args.queries, 20)
        served = serve_in_child(args, directory, truth_path, queries)
    finally:
        if args.keep:
            log.info("kept the store: --serve %s %s", directory, truth_path)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    first = served["by_ef"][combo_name(args, args.ef[0], args.oversampling[0])]
    highest = built.get("highest_memory_sampled", {})
    emit(
        "million",
        {
            "points": args.points,
            "dim": DIM,
            "queries": args.queries,
            "cores": usable_cores(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "settings": settings_of(args, args.ef[0]).model_dump(mode="json", exclude={"api_key"}),
            "ef_search": args.ef,
            "oversampling": args.oversampling,
            "fill_and_build": built,
            "disk_mib": disk,
            "after_restart": served,
            "summary": {
                "build_total_s": built.get("build_total_s"),
                "fill_and_index_s": built.get("fill_and_index_s"),
                "build_child_cpu_s": built["build_child_cpu_s"],
                "during_build_p50_ms": built["during_build_searches"]["p50_ms"],
                "during_build_p99_ms": built["during_build_searches"]["p99_ms"],
                # the first ef is the baseline of the ones that follow
                "after_p50_ms": first["image_no_filter"]["p50_ms"],
                "after_p99_ms": first["image_no_filter"]["p99_ms"],
                "after_filtered_p99_ms": first["image_filter_tenant"]["p99_ms"],
                "recall_at_10": first["image_no_filter"]["recall_at_10"],
                "reopen_s": served["reopen_s"],
                "api_rss_mib": first["memory_after_searches"]["rss_mib"],
                "api_pss_mib": first["memory_after_searches"]["pss_mib"],
                "highest_rss_while_filling_mib": highest.get("rss_mib"),
                "highest_pss_while_filling_mib": highest.get("pss_mib"),
                "p50_ratio_to_during_build": round(
                    first["image_no_filter"]["p50_ms"]
                    / max(built["during_build_searches"]["p50_ms"], 1e-6),
                    4,
                ),
            },
        },
    )


if __name__ == "__main__":
    main()
