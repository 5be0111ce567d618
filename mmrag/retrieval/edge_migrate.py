"""Bring a shard made by an older release up to the current vector layout.

The engine refuses to open a shard with a config naming vectors its segments lack (a shard
from before region vectors has no ``region``), and cannot add one in place. So the points are
copied, vectors and payloads as they are, into a new generation created with the full config,
which is then published like an index build; the old generation is deleted once the new one is
live. A crash part way leaves the old generation live and the copy is removed on next open.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import qdrant_edge as qe

from mmrag.retrieval import edge_shard

log = logging.getLogger(__name__)

_PAGE = 256


def missing_vectors(shard: qe.EdgeShard, dim: int, names: tuple[str, ...]) -> list[str]:
    """The vector names of ``names`` the shard cannot be queried on."""
    missing = []
    for name in names:
        request = qe.QueryRequest(limit=1, query=qe.Query.Nearest([[0.0] * dim], using=name))
        try:
            shard.query(request)
        except Exception as error:  # the engine's one exception type; it names the vector
            if "Not existing vector name" not in str(error):
                raise
            missing.append(name)
    return missing


def migrate(
    shard: qe.EdgeShard, paths: edge_shard.ShardPaths, live: Path, config: qe.EdgeConfig
) -> tuple[qe.EdgeShard, Path]:
    """Copy ``shard`` (live at ``live``) into a new generation made with ``config``; publish it.

    Returns the new shard and its directory; ``shard`` is closed and its directory removed.
    """
    target = paths.next_generation()
    fresh = edge_shard.create(target, config)
    copied = 0
    try:
        offset: qe.PointId | None = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=_PAGE, with_payload=True, with_vector=True
            )
            records, offset = shard.scroll(request)
            # Named vectors come back as a dict (this shard has no unnamed vector).
            points = [
                qe.Point(record.id, record.vector or {}, dict(record.payload or {}))
                for record in records
            ]
            if points:
                fresh.update(qe.UpdateOperation.upsert_points(points))
                copied += len(points)
            if offset is None:
                break
        fresh.flush()
        paths.publish(target)
    except BaseException:
        fresh.close()
        shutil.rmtree(target, ignore_errors=True)
        raise
    shard.close()
    shutil.rmtree(live, ignore_errors=True)
    log.info("migrated %d points of %s into %s (new vector layout)", copied, live, target)
    return fresh, target
