"""What the bot has already seen, kept in SQLite in the data dir so a restart forgets nothing.

Slack delivers an event again when the ack was late (``X-Slack-Retry-Num``), and a captured
request can be replayed within the signature's 5-minute window: the first is caught by the
event id, the second by the request's signature (a replay carries the same one).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Slack retries for about an hour at most; a signature is valid for 5 minutes.
KEEP_S = 2 * 3600.0


class SeenStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL)")
        self._last_sweep = 0.0

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is offered, False ever after (within KEEP_S)."""
        now = self._clock()
        with self._lock:
            if now - self._last_sweep > 60:
                self._db.execute("DELETE FROM seen WHERE at < ?", (now - KEEP_S,))
                self._last_sweep = now
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", (key, now)
            )
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
