"""Build a shard copy's HNSW graph in a child process.

``EdgeShard.optimize()`` holds the GIL for the whole build (measured: a 10 ms sleeper thread
did not run for the 14 s a 20k-point build took), so called in the server process it would
freeze every request. A child process has its own interpreter: it opens the copy, optimizes
it at low CPU priority, and exits; the parent keeps serving from the live shard meanwhile.

Run as ``python -m mmrag.retrieval.edge_build <shard-dir>``; it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Builds yield the CPU to searches: at 2 cores the build otherwise doubles search latency.
_BUILD_NICENESS = 10
_POLL_SECONDS = 0.2
_MERGE_ALL = "--merge-all"


@dataclass(frozen=True)
class BuildResult:
    optimized: bool
    seconds: float
    cancelled: bool = False


def run_build(path: Path, cancel: threading.Event, *, merge_all: bool = False) -> BuildResult:
    """Optimize the shard at ``path`` in a child process; stops it when ``cancel`` is set.
    ``merge_all`` also merges every indexed segment into one graph."""
    started = time.monotonic()
    command = [sys.executable, "-m", "mmrag.retrieval.edge_build", str(path)]
    child = subprocess.Popen(
        [*command, _MERGE_ALL] if merge_all else command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:
            try:
                # communicate() keeps draining both pipes: a chatty child never blocks on them.
                out, err = child.communicate(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set():
                    child.kill()
                    child.communicate()
                    return BuildResult(False, time.monotonic() - started, cancelled=True)
    except BaseException:
        child.kill()  # never leave a build running behind an interrupted parent
        raise
    if child.returncode != 0:
        raise RuntimeError(f"index build of {path} failed ({child.returncode}): {err.strip()}")
    report = json.loads(out.strip().splitlines()[-1])
    return BuildResult(bool(report["optimized"]), time.monotonic() - started)


def main(argv: list[str]) -> int:
    import qdrant_edge as qe

    from mmrag.retrieval.edge_shard import optimizers_only

    path, *flags = argv
    merge_all = flags == [_MERGE_ALL]
    with contextlib.suppress(OSError):  # not permitted: build at normal priority
        os.nice(_BUILD_NICENESS)
    started = time.monotonic()
    shard = qe.EdgeShard.load(path, optimizers_only(merge_all=True) if merge_all else None)
    try:
        optimized = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    if merge_all:  # the shard persisted the merging optimizers: its next builds must not
        restored = qe.EdgeShard.load(path, optimizers_only(merge_all=False))
        restored.flush()
        restored.close()
    report = {"optimized": optimized, "seconds": round(time.monotonic() - started, 3)}
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
