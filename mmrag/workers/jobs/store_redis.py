"""The distributed mode's job store: Redis, next to the task broker.

Keys per job (``mmrag:job:{id}:...``): ``record`` (the spec, JSON), ``meta`` (a hash:
state, started, finished), ``items`` (a hash seq -> item JSON), ``pending`` (a sorted set
seq -> not_before), ``running`` (a set of seqs), ``counts`` (a hash state -> n) and
``timings`` (a hash stage -> seconds). ``mmrag:jobs`` orders jobs by creation.

An item is claimed by whoever removes it from ``pending`` (``ZREM`` answers 1 to one
caller only), so two drivers never run the same item at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from mmrag.errors import NotFound, Unavailable
from mmrag.workers.jobs.records import (
    ITEM_STATES,
    UNFINISHED,
    ItemRecord,
    ItemState,
    JobRecord,
    JobState,
)

_JOBS = "mmrag:jobs"
_CHUNK = 1_000


def _key(job_id: str, part: str) -> str:
    return f"mmrag:job:{job_id}:{part}"


class RedisJobStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @classmethod
    def from_url(cls, url: str) -> RedisJobStore:
        return cls(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5))

    def create(self, job: JobRecord, keys: Sequence[str]) -> None:
        with _Available():
            for start in range(0, len(keys), _CHUNK):
                pipe = self._redis.pipeline(transaction=False)
                chunk = keys[start : start + _CHUNK]
                seqs = range(start, start + len(chunk))
                pipe.hset(
                    _key(job.id, "items"),
                    mapping={
                        str(seq): ItemRecord(seq=seq, key=key).model_dump_json()
                        for seq, key in zip(seqs, chunk, strict=True)
                    },
                )
                pipe.zadd(_key(job.id, "pending"), {str(seq): 0.0 for seq in seqs})
                pipe.execute()
            # The job becomes visible last: a driver never sees a job whose items are missing.
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(_key(job.id, "counts"), mapping={"pending": len(keys)})
            pipe.set(_key(job.id, "record"), job.model_dump_json())
            pipe.hset(_key(job.id, "meta"), mapping={"state": job.state})
            pipe.zadd(_JOBS, {job.id: job.created})
            pipe.execute()

    def get(self, job_id: str) -> JobRecord:
        with _Available():
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(_key(job_id, "record"))
            pipe.hgetall(_key(job_id, "meta"))
            record, meta = pipe.execute()
        if record is None:
            raise NotFound(f"no job with id {job_id}")
        return _job(record, meta)

    def page(self, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        with _Available():
            ids = self._redis.zrevrange(_JOBS, offset, offset + limit - 1)
            total = int(self._redis.zcard(_JOBS))
            jobs = []
            for job_id in ids:
                try:
                    jobs.append(self.get(_text(job_id)))
                except NotFound:
                    continue  # deleted between the two reads
        return jobs, total

    def set_state(
        self, job_id: str, state: JobState, expected: frozenset[JobState], now: float
    ) -> bool:
        meta = _key(job_id, "meta")
        with _Available(), self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(meta)  # type: ignore[no-untyped-call]
                    current = pipe.hgetall(meta)
                    if _text(current.get(b"state", b"")) not in expected:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(meta, "state", state)
                    stamp = _stamp_field(state)
                    if stamp and stamp.encode() not in current:
                        pipe.hset(meta, stamp, repr(now))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue  # the other writer won; read again

    def claim(self, job_id: str, limit: int, now: float) -> list[ItemRecord]:
        with _Available():
            due = self._redis.zrangebyscore(_key(job_id, "pending"), "-inf", now, 0, limit)
            claimed = []
            for seq in map(_text, due):
                if self._redis.zrem(_key(job_id, "pending"), seq):
                    self._redis.sadd(_key(job_id, "running"), seq)
                    claimed.append(seq)
            if not claimed:
                return []
            records = self._redis.hmget(_key(job_id, "items"), claimed)
            items = [
                ItemRecord.model_validate_json(record).model_copy(update={"state": "running"})
                for record in records
                if record is not None
            ]
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(
                _key(job_id, "items"), mapping={str(i.seq): i.model_dump_json() for i in items}
            )
            pipe.hincrby(_key(job_id, "counts"), "pending", -len(items))
            pipe.hincrby(_key(job_id, "counts"), "running", len(items))
            pipe.execute()
        return items

    def save_items(self, job_id: str, items: Sequence[ItemRecord]) -> None:
        if not items:
            return
        with _Available():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(
                _key(job_id, "items"), mapping={str(i.seq): i.model_dump_json() for i in items}
            )
            pipe.srem(_key(job_id, "running"), *[str(item.seq) for item in items])
            pipe.hincrby(_key(job_id, "counts"), "running", -len(items))
            for item in items:
                pipe.hincrby(_key(job_id, "counts"), item.state, 1)
                if item.state == "pending":
                    pipe.zadd(_key(job_id, "pending"), {str(item.seq): item.not_before})
            pipe.execute()

    def reset_running(self, job_id: str) -> int:
        with _Available():
            seqs = [_text(seq) for seq in self._redis.smembers(_key(job_id, "running"))]
            if not seqs:
                return 0
            records = self._redis.hmget(_key(job_id, "items"), seqs)
            items = [
                ItemRecord.model_validate_json(record).model_copy(update={"state": "pending"})
                for record in records
                if record is not None
            ]
        self.save_items(job_id, items)
        return len(items)

    def counts(self, job_id: str) -> dict[ItemState, int]:
        with _Available():
            found = {
                _text(k): int(v) for k, v in self._redis.hgetall(_key(job_id, "counts")).items()
            }
        return {state: found.get(state, 0) for state in ITEM_STATES}

    def items(self, job_id: str, offset: int, limit: int) -> list[ItemRecord]:
        with _Available():
            seqs = [str(seq) for seq in range(offset, offset + limit)]
            records = self._redis.hmget(_key(job_id, "items"), seqs)
        return [ItemRecord.model_validate_json(r) for r in records if r is not None]

    def add_timings(self, job_id: str, seconds: Mapping[str, float]) -> None:
        with _Available():
            pipe = self._redis.pipeline(transaction=False)
            for stage, value in seconds.items():
                pipe.hincrbyfloat(_key(job_id, "timings"), stage, value)
            pipe.execute()

    def timings(self, job_id: str) -> dict[str, float]:
        with _Available():
            found = self._redis.hgetall(_key(job_id, "timings"))
        return {_text(stage): float(value) for stage, value in found.items()}

    def unfinished(self) -> list[str]:
        with _Available():
            ids = [_text(job_id) for job_id in self._redis.zrange(_JOBS, 0, -1)]
        jobs = []
        for job_id in ids:
            try:
                jobs.append(self.get(job_id))
            except NotFound:
                continue
        open_jobs = [job for job in jobs if job.state in UNFINISHED]
        open_jobs.sort(key=lambda job: (-job.spec.options.priority, job.created))
        return [job.id for job in open_jobs]

    def close(self) -> None:
        self._redis.close()


class _Available:
    """Redis errors as :class:`Unavailable` (the API answers 503; the driver retries)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if isinstance(error, redis.RedisError):
            raise Unavailable(
                f"the job store (Redis) is unreachable: {type(error).__name__}"
            ) from error


def _stamp_field(state: JobState) -> str | None:
    if state == "running":
        return "started"
    if state in ("completed", "cancelled"):
        return "finished"
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job(record: bytes, meta: dict[bytes, bytes]) -> JobRecord:
    job = JobRecord.model_validate_json(record)
    started = meta.get(b"started")
    finished = meta.get(b"finished")
    return job.model_copy(
        update={
            "state": _text(meta.get(b"state", job.state.encode())),
            "started": float(started) if started else None,
            "finished": float(finished) if finished else None,
        }
    )
