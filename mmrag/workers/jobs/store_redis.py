"""The distributed mode's job store: Redis, next to the task broker.

Keys per job (``mmrag:job:{id}:...``): ``record`` (the spec, JSON), ``meta`` (a hash:
state, started, finished), ``items`` (a hash seq -> item JSON), ``pending`` (a sorted set
seq -> not_before), ``running`` (a sorted set seq -> lease deadline), ``owners`` (a hash
seq -> the token of the claim that holds it), ``counts`` (a hash state -> n),
``images`` (a hash image id -> the seq of the item that brought it) and ``timings`` (a hash
stage -> seconds). ``mmrag:jobs`` orders jobs by creation; ``mmrag:jobs:open`` holds
the unfinished ones, so drivers never scan finished jobs.

Claims and saves are Lua scripts, atomic in Redis: an item is claimed by one driver
only, and a restart of Redis in the middle of either leaves no item in neither set.
Members of ``pending`` and ``running`` are zero-padded seqs: every pending score is 0 until
a retry, and Redis orders ties by member bytes, so "10" would come before "2".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import redis
from pydantic import ValidationError

from mmrag.errors import NotFound, Unavailable
from mmrag.workers.jobs.records import (
    ITEM_STATES,
    UNFINISHED,
    ItemRecord,
    ItemState,
    JobRecord,
    JobState,
)

log = logging.getLogger(__name__)

_JOBS = "mmrag:jobs"
_OPEN = "mmrag:jobs:open"  # ids of jobs not yet completed or cancelled: what drivers scan

# Scripts run atomically in Redis: a claim or a save cut short by a restart either
# happened whole or not at all, so no item is left in neither set, and counts stay true.
# KEYS: pending, running, counts, items, owners. ARGV: now, limit, owner, lease deadline.
# Items whose lease ran out (their driver died, or its claim's reply was lost) go back to
# pending first; then due items move pending -> running under this claim's lease.
_CLAIM = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('HDEL', KEYS[5], member)
  redis.call('ZADD', KEYS[1], 0, member)
end
if #expired > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', -#expired)
  redis.call('HINCRBY', KEYS[3], 'pending', #expired)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local records = {}
for i, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[4], member)
  redis.call('HSET', KEYS[5], member, ARGV[3])
  records[i] = redis.call('HGET', KEYS[4], tostring(tonumber(member)))
end
if #due > 0 then
  redis.call('HINCRBY', KEYS[3], 'pending', -#due)
  redis.call('HINCRBY', KEYS[3], 'running', #due)
end
return records
"""
# KEYS: running, owners. ARGV: owner, lease deadline, members... Extends the leases the
# owner still holds (one that ran out and went to another claim stays there).
_RENEW = """
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
  end
end
return 1
"""
# KEYS: items, pending, running, counts, owners. ARGV: owner, then (member, state,
# not_before, record) per item. Only items still running under this owner's claim move: a
# save repeated after a lost reply, or one whose lease ran out, changes nothing.
_SAVE = """
for i = 2, #ARGV, 4 do
  local member, state = ARGV[i], ARGV[i + 1]
  local held = redis.call('HGET', KEYS[5], member) == ARGV[1]
  if held and redis.call('ZREM', KEYS[3], member) == 1 then
    redis.call('HDEL', KEYS[5], member)
    redis.call('HINCRBY', KEYS[4], 'running', -1)
    redis.call('HINCRBY', KEYS[4], state, 1)
    if state == 'pending' then
      redis.call('ZADD', KEYS[2], ARGV[i + 2], member)
    end
    redis.call('HSET', KEYS[1], tostring(tonumber(member)), ARGV[i + 3])
  end
end
return 1
"""
_CHUNK = 1_000


def _key(job_id: str, part: str) -> str:
    return f"mmrag:job:{job_id}:{part}"


def _member(seq: int) -> str:
    """A seq as a member of ``pending``/``running``: padded, so ties sort by number."""
    return f"{seq:010d}"


class RedisJobStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._save = client.register_script(_SAVE)

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
                pipe.zadd(_key(job.id, "pending"), {_member(seq): 0.0 for seq in seqs})
                pipe.execute()
            # The job becomes visible last: a driver never sees a job whose items are missing.
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(_key(job.id, "counts"), mapping={"pending": len(keys)})
            pipe.set(_key(job.id, "record"), job.model_dump_json())
            pipe.hset(_key(job.id, "meta"), mapping={"state": job.state})
            pipe.zadd(_JOBS, {job.id: job.created})
            pipe.sadd(_OPEN, job.id)
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
                    if state not in UNFINISHED:
                        pipe.srem(_OPEN, job_id)
                    stamp = _stamp_field(state)
                    if stamp and stamp.encode() not in current:
                        pipe.hset(meta, stamp, repr(now))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue  # the other writer won; read again

    def claim(
        self, job_id: str, limit: int, now: float, owner: str, lease_until: float
    ) -> list[ItemRecord]:
        keys = [
            _key(job_id, "pending"),
            _key(job_id, "running"),
            _key(job_id, "counts"),
            _key(job_id, "items"),
            _key(job_id, "owners"),
        ]
        with _Available():
            records = self._claim(keys=keys, args=[now, limit, owner, lease_until])
        # A stored record keeps saying "pending" while it runs: the sets are what count.
        return [
            ItemRecord.model_validate_json(record).model_copy(update={"state": "running"})
            for record in records
            if record
        ]

    def renew(self, job_id: str, owner: str, seqs: Sequence[int], lease_until: float) -> None:
        if not seqs:
            return
        keys = [_key(job_id, "running"), _key(job_id, "owners")]
        with _Available():
            self._renew(keys=keys, args=[owner, lease_until, *map(_member, seqs)])

    def save_items(self, job_id: str, items: Sequence[ItemRecord], owner: str) -> None:
        if not items:
            return
        keys = [
            _key(job_id, "items"),
            _key(job_id, "pending"),
            _key(job_id, "running"),
            _key(job_id, "counts"),
            _key(job_id, "owners"),
        ]
        args: list[str | float] = [owner]
        for item in items:
            args.extend([_member(item.seq), item.state, item.not_before, item.model_dump_json()])
        with _Available():
            self._save(keys=keys, args=args)

    def claim_images(self, job_id: str, pairs: Sequence[tuple[str, int]]) -> list[tuple[int, bool]]:
        if not pairs:
            return []
        with _Available():
            pipe = self._redis.pipeline(transaction=True)
            for image_id, seq in pairs:
                pipe.hsetnx(_key(job_id, "images"), image_id, seq)
                pipe.hget(_key(job_id, "images"), image_id)
            replies = pipe.execute()
        return [
            (int(owner), bool(new)) for new, owner in zip(replies[::2], replies[1::2], strict=True)
        ]

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
            ids = [_text(job_id) for job_id in self._redis.smembers(_OPEN)]
        jobs = []
        for job_id in ids:
            try:
                jobs.append(self.get(job_id))
            except NotFound:
                continue
            except ValidationError:  # one bad record must not hide every other job
                log.exception("job %s: its record does not read back", job_id)
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
