"""Server-sent events for long requests: progress while the work runs, then its result.

A client that asks with ``Accept: text/event-stream`` gets ``progress`` events
(``{"done", "total"}``) and one closing ``result`` event (the JSON body it would otherwise
get) or ``error`` event (a problem+json body). A client that goes away cancels the work at
the next item.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]

EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class Progress:
    done: int
    total: int


class ClientGoneError(Exception):
    """Raised from the progress callback to stop work nobody waits for."""


def wants_events(request: Request) -> bool:
    return EVENT_STREAM in request.headers.get("accept", "")


def sse(event: str, data: Any) -> str:
    if isinstance(data, Progress):
        data = asdict(data)
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"event: {event}\ndata: {payload}\n\n"


async def run_with_progress(
    work: Callable[[ProgressFn], T],
) -> AsyncIterator[Progress | T]:
    """Run ``work`` in a thread; yield each :class:`Progress` it reports, then its result.

    Its exception propagates from the iterator. Closing the iterator early cancels the work.
    """
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[Progress] = asyncio.Queue()
    gone = threading.Event()

    def progress(done: int, total: int) -> None:
        if gone.is_set():
            raise ClientGoneError
        loop.call_soon_threadsafe(updates.put_nowait, Progress(done, total))

    task = asyncio.ensure_future(run_in_threadpool(work, progress))
    try:
        while not task.done():
            getter = asyncio.ensure_future(updates.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        while not updates.empty():
            yield updates.get_nowait()
        yield task.result()
    finally:
        gone.set()
