"""An edge shard's files: its configuration, opening it, the directory lock, generations.

Layout under the store directory, for a collection ``images``::

    images/CURRENT        names the live generation ("gen-000003"), replaced atomically
    images/gen-000003/    the live shard (qdrant-edge's own files)
    images/gen-000004/    a copy being indexed by a child process (see ``edge_build``)
    images/.lock          held (flock) by the one process that has the collection open

An index build copies the live generation into the next one, builds it, and publishes it by
rewriting CURRENT; no directory is ever renamed under an open shard. Whatever a crash leaves
behind, the generation CURRENT names is complete, and the others are deleted on open.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

import qdrant_edge as qe

from mmrag.config import HnswSettings, StoreSettings
from mmrag.errors import Unavailable
from mmrag.models.cpu import usable_cores
from mmrag.retrieval.store import IMAGE_VECTOR, REGION_VECTOR, SPARSE_VECTOR, TEXT_VECTOR
from mmrag.retrieval.store_common import FULL_SCAN_THRESHOLD_KB

log = logging.getLogger(__name__)

# The engine indexes a segment on optimize() only above this size. Our scheduler decides when
# a build is worth it, so the engine must never refuse one: 1 KiB (0 would disable indexing).
INDEXING_THRESHOLD_KB = 1

_UNCAPPED_KB = 1 << 40
_CURRENT = "CURRENT"
_CONFIG_FILE = "edge_config.json"
_GENERATION = "gen-{:06d}"


class ShardPaths:
    def __init__(self, directory: Path, collection: str) -> None:
        self.root = directory / collection
        self.lock = self.root / ".lock"
        self._current = self.root / _CURRENT

    def live(self) -> Path | None:
        """The published generation, or None before the collection was created."""
        try:
            name = self._current.read_text().strip()
        except FileNotFoundError:
            return None
        path = self.root / name
        return path if (path / _CONFIG_FILE).is_file() else None

    def next_generation(self) -> Path:
        numbers = [int(p.name.split("-")[1]) for p in self.root.glob("gen-*") if p.is_dir()]
        return self.root / _GENERATION.format(max(numbers, default=0) + 1)

    def publish(self, generation: Path) -> None:
        """Make ``generation`` the live one, atomically and durably."""
        staged = self.root / f"{_CURRENT}.tmp"
        with staged.open("w") as handle:
            handle.write(generation.name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        staged.replace(self._current)
        _fsync_dir(self.root)

    def remove_stale(self) -> None:
        """Delete every generation but the live one (unfinished builds, superseded shards)."""
        live = self.live()
        for path in self.root.glob("gen-*"):
            if path != live:
                log.info("removing stale shard generation %s", path)
                shutil.rmtree(path, ignore_errors=True)
        (self.root / f"{_CURRENT}.tmp").unlink(missing_ok=True)


def hnsw_config(hnsw: HnswSettings) -> qe.HnswIndexConfig:
    return qe.HnswIndexConfig(
        m=hnsw.m,
        ef_construct=hnsw.ef_construct,
        full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
        max_indexing_threads=usable_cores(),
        payload_m=hnsw.payload_m,
    )


def quantization_config(settings: StoreSettings) -> qe.ScalarQuantizationConfig | None:
    if settings.quantization == "none":
        return None
    # quantile 0.99: the extreme 1 % of values clip, so the other 99 % get finer int8 steps.
    # Pinned and Cold are what the deprecated always_ram true and false meant (the same heap,
    # mapped pages and load time, measured at 200k). Cached would read the mapped copies in at
    # every open (200k: 0.6 -> 3.3 s) to make the first searches faster (p50 of the first 200:
    # 2.3 -> 0.85 ms); a restart under 10 s at a million matters more.
    memory = qe.Memory.Pinned if settings.quantized_in_ram else qe.Memory.Cold
    return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, memory=memory)


def shard_config(dim: int, settings: StoreSettings) -> qe.EdgeConfig:
    # Both live in files. Cached: loaded into the page cache when the shard opens, and resident
    # from then on; Cold: read only where a search touches them.
    memory = qe.Memory.Cold if settings.on_disk_vectors else qe.Memory.Cached

    def dense_params() -> qe.EdgeVectorParams:
        return qe.EdgeVectorParams(
            size=dim,
            distance=qe.Distance.Cosine,
            memory=memory,
            quantization_config=quantization_config(settings),
        )

    # An image's crops, compared with a query by their best match (MaxSim).
    regions = qe.EdgeVectorParams(
        size=dim,
        distance=qe.Distance.Cosine,
        memory=memory,
        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
    )
    return qe.EdgeConfig(
        vectors={IMAGE_VECTOR: dense_params(), TEXT_VECTOR: dense_params(), REGION_VECTOR: regions},
        sparse_vectors=_sparse_vectors(),
        hnsw_config=hnsw_config(settings.hnsw),
        optimizers=_optimizers(merge_all=False),
        payload_memory=qe.Memory.Cold,
    )


def _sparse_vectors() -> dict[str, qe.EdgeSparseVectorParams]:
    return {SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}


def _optimizers(*, merge_all: bool) -> qe.EdgeOptimizersConfig:
    if not merge_all:
        return qe.EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB)
    # The engine caps a segment's size (at 2 cores, ~200k of our points), so builds made while
    # a large collection fills leave several graphs, each searched and loaded on its own.
    return qe.EdgeOptimizersConfig(
        indexing_threshold=INDEXING_THRESHOLD_KB,
        default_segment_number=1,
        max_segment_size=_UNCAPPED_KB,
    )


def optimizers_only(*, merge_all: bool) -> qe.EdgeConfig:
    """A load config that changes the optimizers alone: everything unnamed keeps what the
    shard persisted (the binding wants some vectors named: the sparse ones never change)."""
    return qe.EdgeConfig(
        sparse_vectors=_sparse_vectors(), optimizers=_optimizers(merge_all=merge_all)
    )


class DirectoryLock:
    """An exclusive flock on the collection, taken before touching any of its directories.

    The engine's WAL lock only covers one generation; this one covers them all, so a second
    process never deletes a generation the first one is building.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise in_use(self._path.parent) from error
            raise
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def in_use(directory: Path) -> Unavailable:
    return Unavailable(
        f"the vector store in {directory} is already open (by another process or store); the "
        "embedded store serves one process per data dir (run one server, or use "
        "MMRAG_STORE__BACKEND=qdrant)"
    )


def open_error(path: Path, error: Exception) -> Unavailable:
    message = str(error)
    if "WouldBlock" in message or "lock" in message.lower():
        return in_use(path.parent)
    return Unavailable(f"cannot open the vector store at {path}: {message}")


def load(path: Path, config: qe.EdgeConfig | None = None) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.load(str(path), config)
    except Exception as error:  # the binding raises bare Exception for every engine error
        raise open_error(path, error) from error


def config_matches(path: Path, config: qe.EdgeConfig) -> bool:
    """Whether the shard at ``path`` already persists ``config``.

    A reload with a config reads every segment's int8 copies and graphs again (seconds at a
    million points), so it is done only when something changed. What the engine persists for
    ``config`` is read back from an empty shard made with it: the binding has no serializer.
    """
    try:
        persisted = json.loads((path / _CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    with tempfile.TemporaryDirectory(prefix="mmrag-config-") as scratch:
        create(Path(scratch) / "shard", config).close()
        wanted = json.loads((Path(scratch) / "shard" / _CONFIG_FILE).read_text())
    matches: bool = persisted == wanted
    return matches


def create(path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.create(str(path), config)
    except Exception as error:
        raise open_error(path, error) from error


# Files an indexed segment writes once, when it is built, and never again: an update of one of
# its points goes to the appendable segment, a delete sets flags kept in other files, and a
# merge writes a new segment and unlinks the old one. A build's copy links them instead of
# copying them: at a million images they are ~5 of the shard's 7.5 GB.
_WRITTEN_ONCE = frozenset({"matrix.dat", "quantized.data", "links_compressed.bin", "graph.bin"})
_VECTOR_DIRS = ("vector_storage-", "vector_index-")
_BUILT_STORAGE = frozenset({"Mmap", "InRamMmap"})


def copy_tree(source: Path, target: Path) -> None:
    """Copy a shard directory for a build: its indexed segments' written-once files are
    hard-linked, the rest copied keeping holes (its mmap files are mostly unwritten space)."""
    indexed = {path.parent for path in source.glob("segments/*/segment.json") if _indexed(path)}
    for root, _dirs, files in os.walk(source):
        here = Path(root)
        there = target / here.relative_to(source)
        there.mkdir(parents=True, exist_ok=True)
        linkable = here.parent in indexed and here.name.startswith(_VECTOR_DIRS)
        for name in files:
            if not (linkable and name in _WRITTEN_ONCE and _linked(here / name, there / name)):
                _copy_sparse(here / name, there / name)


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links: copied instead
        return False
    return True


def _indexed(segment_json: Path) -> bool:
    """Whether a segment is one an index build made: its vectors in fixed mmap files, which
    only a rebuild replaces, not the appendable segment's growing chunks."""
    vectors = json.loads(segment_json.read_text())["config"]["vector_data"].values()
    return all(params.get("storage_type") in _BUILT_STORAGE for params in vectors)


def _copy_sparse(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                data = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            hole = os.lseek(src.fileno(), data, os.SEEK_HOLE)
            src.seek(data)
            dst.seek(data)
            remaining = hole - data
            while remaining:
                chunk = src.read(min(remaining, 8 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                remaining -= len(chunk)
            offset = hole
        dst.truncate(size)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
