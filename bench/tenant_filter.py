"""What the tenant design (retrieval/tenants.py) costs a search, on the edge store, in one run.

A corpus of embedding-like vectors (bench.search_latency's generator) is spread over
``--tenants`` tenants (Zipf-sized: a few large, many small) through their views, exactly as
the service writes it. The same text-like queries then run:

- on the whole store with no filter (the baseline: one tenant holding everything);
- through a large tenant's view, a median one's and a small one's (a ``tenant`` keyword match
  on a payload index);
- through the default tenant's view (a ``must_not`` on the scoped flag);

before and after the HNSW build. Figures: p50/p99 and the ratio of each to the baseline.

    .venv/bin/python -m bench.tenant_filter --points 20000 --tenants 50
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, percentiles_ms, timed
from bench.concept_space import DIM, Matrix
from bench.search_latency import make_corpus
from mmrag.config import HnswSettings, StoreSettings
from mmrag.retrieval.store import ImagePoint, VectorStore
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.tenants import DEFAULT_TENANT, TenantView


def _measure(store: VectorStore, queries: Matrix) -> dict[str, float]:
    samples = [timed(partial(store.search, query, "image", 10)) for query in queries]
    return percentiles_ms(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    corpus = make_corpus(args.points, args.queries, seed=7)
    weights = 1.0 / np.arange(1, args.tenants + 1)
    owner = np.random.default_rng(7).choice(
        args.tenants, size=args.points, p=weights / weights.sum()
    )
    names = [DEFAULT_TENANT if t == 0 else f"tenant{t}" for t in range(args.tenants)]
    sizes = np.bincount(owner, minlength=args.tenants)
    order = np.argsort(-sizes)
    picked = {
        "large": names[order[1] if names[order[0]] == DEFAULT_TENANT else order[0]],
        "median": names[order[len(order) // 2]],
        "small": names[order[-1]],
    }
    with tempfile.TemporaryDirectory(prefix="mmrag-tenant-filter-") as root:
        store = EdgeVectorStore(Path(root) / "shard", StoreSettings(hnsw=HnswSettings()))
        store.ensure_collection(DIM)
        start = datetime(2024, 1, 1, tzinfo=UTC).isoformat()
        views = {name: TenantView(store, name) for name in names}
        for tenant, name in enumerate(names):
            points = [
                ImagePoint(f"{i:032x}", corpus.images[i], {"id": f"{i:032x}", "created": start})
                for i in np.flatnonzero(owner == tenant)
            ]
            for lo in range(0, len(points), 2000):
                views[name].upsert(points[lo : lo + 2000])
        phases: dict[str, Any] = {}
        for phase in ("brute_force", "hnsw"):
            if phase == "hnsw":
                store.optimize()
            baseline = _measure(store, corpus.queries)
            rows: dict[str, Any] = {"whole_store_no_filter": baseline}
            for label, name in [*picked.items(), ("default", DEFAULT_TENANT)]:
                found = _measure(views[name], corpus.queries)
                rows[f"{label}_tenant"] = {
                    "tenant_points": int(sizes[names.index(name)]),
                    **found,
                    "p50_ratio": round(found["p50_ms"] / baseline["p50_ms"], 2),
                }
            phases[phase] = rows
        store.close()
    emit(
        "tenant_filter",
        {"points": args.points, "tenants": args.tenants, "queries": args.queries, **phases},
    )


if __name__ == "__main__":
    main()
