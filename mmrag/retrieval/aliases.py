"""Collection versions behind one name: ``MMRAG_STORE__COLLECTION`` names an alias, and a
small record in the data dir says which physical collection it points at and which embedder
filled it. A re-index fills a new version (``<name>__<8 hex of the embedder spec>``) and then
rewrites the record in one atomic rename; until then every process opens the old version.
Versions a switch retired are listed with the time after which they may be dropped."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

RECORD = "collections.json"


@dataclass(frozen=True)
class Retired:
    collection: str
    drop_after: str  # ISO 8601, UTC


@dataclass(frozen=True)
class Alias:
    collection: str  # the physical collection the name points at
    embedder: str  # the spec whose vectors it holds
    dim: int
    retired: tuple[Retired, ...] = field(default_factory=tuple)


def version_name(alias: str, spec: str) -> str:
    """The physical collection a re-index with ``spec`` fills (the same on every resume)."""
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    return f"{alias}__{digest}"


def read_aliases(data_dir: Path) -> dict[str, Alias]:
    path = data_dir / RECORD
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {
        name: Alias(
            entry["collection"],
            entry["embedder"],
            int(entry["dim"]),
            tuple(Retired(**retired) for retired in entry.get("retired", [])),
        )
        for name, entry in raw.items()
    }


def physical_collection(data_dir: Path, alias: str) -> str:
    """The collection ``alias`` points at: itself until a re-index switched it."""
    found = read_aliases(data_dir).get(alias)
    return found.collection if found else alias


def switch_alias(
    data_dir: Path, alias: str, collection: str, embedder: str, dim: int, drop_after: datetime
) -> str:
    """Point ``alias`` at ``collection`` (one atomic rename of the record); the collection it
    pointed at is retired until ``drop_after``. Returns that previous collection."""
    aliases = read_aliases(data_dir)
    previous = aliases.get(alias)
    old = previous.collection if previous else alias
    retired = [*(previous.retired if previous else ()), Retired(old, drop_after.isoformat())]
    aliases[alias] = Alias(
        collection,
        embedder,
        dim,
        tuple(entry for entry in retired if entry.collection != collection),
    )
    _write(data_dir, aliases)
    return old


def forget_retired(data_dir: Path, alias: str, collection: str) -> None:
    aliases = read_aliases(data_dir)
    entry = aliases.get(alias)
    if entry is None:
        return
    kept = tuple(retired for retired in entry.retired if retired.collection != collection)
    aliases[alias] = Alias(entry.collection, entry.embedder, entry.dim, kept)
    _write(data_dir, aliases)


def _write(data_dir: Path, aliases: dict[str, Alias]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = data_dir / f".{RECORD}.tmp"
    temporary.write_text(json.dumps({name: asdict(a) for name, a in aliases.items()}, indent=2))
    os.replace(temporary, data_dir / RECORD)
