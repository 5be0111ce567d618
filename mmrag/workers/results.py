"""Each task's results are stored once, keyed by the task id.

Redis can hand a task to a second worker (the first died, or outlived the visibility
timeout). The second run then finds the first run's results and returns them instead of
computing and storing its own; if both finish, the first ``SET NX`` wins and both return it.
"""

from __future__ import annotations

import json
from typing import cast

import redis

from mmrag.workers.protocol import ItemResult

RESULT_TTL_S = 24 * 3600
_PREFIX = "mmrag:task-results:"


class ResultLedger:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def find(self, task_id: str) -> list[ItemResult] | None:
        stored = self._client.get(_PREFIX + task_id)
        return None if stored is None else _decode(stored)

    def store_once(self, task_id: str, results: list[ItemResult]) -> list[ItemResult]:
        """Store ``results`` unless a run of the same task already did; what is stored."""
        written = self._client.set(_PREFIX + task_id, json.dumps(results), nx=True, ex=RESULT_TTL_S)
        if written:
            return results
        return self.find(task_id) or results


def _decode(stored: object) -> list[ItemResult]:
    text = stored.decode() if isinstance(stored, bytes) else str(stored)
    return cast(list[ItemResult], json.loads(text))
