"""The embedded mode's job store: one SQLite file in the data dir.

One connection, guarded by a lock: the API's threads and the job driver share it, and
SQLite serialises writers anyway. WAL keeps readers (progress polls) off the writer's back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from mmrag.errors import NotFound
from mmrag.workers.jobs.records import (
    ITEM_STATES,
    UNFINISHED,
    ItemRecord,
    ItemState,
    JobRecord,
    JobState,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    owner TEXT,  -- the claim that holds a running item
    lease_until REAL,  -- past it, the item goes back to pending (its driver died)
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (job_id, state, seq);
CREATE TABLE IF NOT EXISTS job_images (
    job_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (job_id, image_id)
);
CREATE TABLE IF NOT EXISTS timings (
    job_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (job_id, stage)
);
"""
_CHUNK = 1_000
# Columns added since the first schema: a data dir made before gets them at open.
_ADDED_COLUMNS = {"owner": "TEXT", "lease_until": "REAL"}


class SqliteJobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create(self, job: JobRecord, keys: Sequence[str]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, record, state, priority, created) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.model_dump_json(), job.state, job.spec.options.priority, job.created),
            )
            for start in range(0, len(keys), _CHUNK):
                rows = [
                    (job.id, seq, key, "pending", ItemRecord(seq=seq, key=key).model_dump_json())
                    for seq, key in enumerate(keys[start : start + _CHUNK], start=start)
                ]
                db.executemany(
                    "INSERT INTO items (job_id, seq, key, state, record) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._db.execute(
                "SELECT record, state, started, finished FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        return _job(row)

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record, state, started, finished FROM jobs "
                "ORDER BY created DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            (total,) = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        return [_job(row) for row in rows], int(total)

    def set_state(
        self, job_id: str, state: JobState, expected: frozenset[JobState], now: float
    ) -> bool:
        marks = sorted(expected)
        stamp = _stamp_column(state)
        stamp_sql = f", {stamp} = COALESCE({stamp}, ?)" if stamp else ""
        parameters: list[object] = [state]
        if stamp:
            parameters.append(now)
        with self._transaction() as db:
            moved = db.execute(
                f"UPDATE jobs SET state = ?{stamp_sql} WHERE id = ? "
                f"AND state IN ({', '.join('?' * len(marks))})",
                [*parameters, job_id, *marks],
            ).rowcount
        return bool(moved)

    def claim(
        self, job_id: str, limit: int, now: float, owner: str, lease_until: float
    ) -> list[ItemRecord]:
        with self._transaction() as db:
            # Leases that ran out: their driver died, so the items are due again.
            db.execute(
                "UPDATE items SET state = 'pending', owner = NULL, not_before = 0, "
                "record = json_set(record, '$.state', 'pending') "
                "WHERE job_id = ? AND state = 'running' AND lease_until < ?",
                (job_id, now),
            )
            rows = db.execute(
                "SELECT record FROM items WHERE job_id = ? AND state = 'pending' "
                "AND not_before <= ? ORDER BY seq LIMIT ?",
                (job_id, now, limit),
            ).fetchall()
            claimed = [
                ItemRecord.model_validate_json(record).model_copy(update={"state": "running"})
                for (record,) in rows
            ]
            db.executemany(
                "UPDATE items SET state = 'running', record = ?, owner = ?, lease_until = ? "
                "WHERE job_id = ? AND seq = ?",
                [
                    (item.model_dump_json(), owner, lease_until, job_id, item.seq)
                    for item in claimed
                ],
            )
        return claimed

    def renew(self, job_id: str, owner: str, seqs: Sequence[int], lease_until: float) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE items SET lease_until = ? "
                "WHERE job_id = ? AND seq = ? AND state = 'running' AND owner = ?",
                [(lease_until, job_id, seq, owner) for seq in seqs],
            )

    def save_items(self, job_id: str, items: Sequence[ItemRecord], owner: str) -> None:
        # Only items still running under this claim move: one whose lease ran out belongs
        # to another claim now, and a repeated save changes nothing.
        with self._transaction() as db:
            db.executemany(
                "UPDATE items SET state = ?, not_before = ?, record = ?, owner = NULL "
                "WHERE job_id = ? AND seq = ? AND state = 'running' AND owner = ?",
                [
                    (item.state, item.not_before, item.model_dump_json(), job_id, item.seq, owner)
                    for item in items
                ],
            )

    def claim_images(self, job_id: str, pairs: Sequence[tuple[str, int]]) -> list[tuple[int, bool]]:
        owners = []
        with self._transaction() as db:
            for image_id, seq in pairs:
                new = db.execute(
                    "INSERT OR IGNORE INTO job_images (job_id, image_id, seq) VALUES (?, ?, ?)",
                    (job_id, image_id, seq),
                ).rowcount
                (owner,) = db.execute(
                    "SELECT seq FROM job_images WHERE job_id = ? AND image_id = ?",
                    (job_id, image_id),
                ).fetchone()
                owners.append((int(owner), new == 1))
        return owners

    def counts(self, job_id: str) -> dict[ItemState, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM items WHERE job_id = ? GROUP BY state", (job_id,)
            ).fetchall()
        found = dict(rows)
        return {state: int(found.get(state, 0)) for state in ITEM_STATES}

    def items(self, job_id: str, offset: int, limit: int) -> list[ItemRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM items WHERE job_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (job_id, offset, limit),
            ).fetchall()
        return [ItemRecord.model_validate_json(record) for (record,) in rows]

    def add_timings(self, job_id: str, seconds: Mapping[str, float]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO timings (job_id, stage, seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (job_id, stage) DO UPDATE SET seconds = seconds + excluded.seconds",
                [(job_id, stage, value) for stage, value in seconds.items()],
            )

    def timings(self, job_id: str) -> dict[str, float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT stage, seconds FROM timings WHERE job_id = ?", (job_id,)
            ).fetchall()
        return {str(stage): float(value) for stage, value in rows}

    def unfinished(self) -> list[str]:
        states = sorted(UNFINISHED)
        with self._lock:
            rows = self._db.execute(
                f"SELECT id FROM jobs WHERE state IN ({', '.join('?' * len(states))}) "
                "ORDER BY priority DESC, created",
                states,
            ).fetchall()
        return [str(job_id) for (job_id,) in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _stamp_column(state: JobState) -> str | None:
    if state == "running":
        return "started"
    if state in ("completed", "cancelled"):
        return "finished"
    return None


def _job(row: tuple[str, str, float | None, float | None]) -> JobRecord:
    record, state, started, finished = row
    job = JobRecord.model_validate_json(record)
    return job.model_copy(update={"state": state, "started": started, "finished": finished})
