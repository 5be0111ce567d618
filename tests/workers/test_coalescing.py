"""The sender's merging of tool tasks: what is merged, how results are split, what fails.

The send function here stands for Celery (tests/workers/test_queue_batching.py sends to a
real worker): it records each task it is given and answers each item with its own id, so a
result that lands with the wrong caller shows.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mmrag.errors import BackendDown, Unavailable
from mmrag.workers.coalescing import TaskCoalescer
from mmrag.workers.protocol import ItemResult, ToolItem, ToolName, ToolTask


def sha(index: int) -> str:
    return hashlib.sha256(str(index).encode()).hexdigest()


def task(*indexes: int, tool: ToolName = "caption", model: str = "fixture:shapes-vlm") -> ToolTask:
    return ToolTask(tool=tool, model=model, items=tuple(ToolItem(sha256=sha(i)) for i in indexes))


class RecordingSend:
    """Answers every item with its own sha; holds each send until ``release`` is set."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.sent: list[ToolTask] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, sent: ToolTask, timeout_s: float) -> list[ItemResult]:
        assert timeout_s > 0
        with self._lock:
            self.sent.append(sent)
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        return [{"caption": item.sha256} for item in sent.items]


@pytest.fixture
def make() -> Iterator[Callable[..., TaskCoalescer]]:
    made: list[TaskCoalescer] = []

    def build(send: RecordingSend, max_items: int = 16, window_s: float = 0.2) -> TaskCoalescer:
        coalescer = TaskCoalescer(send, max_items=max_items, window_s=window_s, in_flight=2)
        made.append(coalescer)
        return coalescer

    yield build
    for coalescer in made:
        coalescer.close()


def run_together(coalescer: TaskCoalescer, tasks: list[ToolTask]) -> list[list[ItemResult]]:
    """Every task from its own thread, started together."""
    start = threading.Barrier(len(tasks))

    def run(sent: ToolTask) -> list[ItemResult]:
        start.wait()
        return coalescer.run(sent, timeout_s=30)

    with ThreadPoolExecutor(len(tasks)) as pool:
        return list(pool.map(run, tasks))


def test_requests_that_wait_together_leave_as_one_task_and_each_gets_its_own(
    make: Callable[..., TaskCoalescer],
) -> None:
    send = RecordingSend()
    coalescer = make(send)
    tasks = [task(1), task(2, 3), task(4), task(5, 6, 7)]
    results = run_together(coalescer, tasks)
    assert len(send.sent) == 1
    assert len(send.sent[0].items) == 7
    for sent, answered in zip(tasks, results, strict=True):
        assert answered == [{"caption": item.sha256} for item in sent.items]
    assert coalescer.tasks_sent == 1


def test_a_batch_never_exceeds_the_cap_and_a_request_is_never_split(
    make: Callable[..., TaskCoalescer],
) -> None:
    send = RecordingSend()
    coalescer = make(send, max_items=4)
    tasks = [task(1, 2, 3), task(4, 5), task(6), task(*range(10, 16)), task(7)]
    results = run_together(coalescer, tasks)
    for sent, answered in zip(tasks, results, strict=True):
        assert answered == [{"caption": item.sha256} for item in sent.items]
    requests = {tuple(sent.items) for sent in tasks}
    for sent in send.sent:
        # Larger than the cap only as a request alone; otherwise whole requests, end to end.
        assert len(sent.items) <= 4 or tuple(sent.items) in requests
    sent_items = sorted(item.sha256 for sent in send.sent for item in sent.items)
    assert sent_items == sorted(item.sha256 for sent in tasks for item in sent.items)


def test_tools_and_models_are_never_merged(make: Callable[..., TaskCoalescer]) -> None:
    send = RecordingSend()
    coalescer = make(send)
    tasks = [
        task(1),
        task(2, model="local:/other"),
        task(3, tool="vqa"),
        task(4),
    ]
    run_together(coalescer, tasks)
    assert sorted((sent.tool, sent.model, len(sent.items)) for sent in send.sent) == [
        ("caption", "fixture:shapes-vlm", 2),
        ("caption", "local:/other", 1),
        ("vqa", "fixture:shapes-vlm", 1),
    ]


def test_a_cap_of_one_sends_every_request_alone(make: Callable[..., TaskCoalescer]) -> None:
    send = RecordingSend()
    coalescer = make(send, max_items=1)
    run_together(coalescer, [task(1), task(2), task(3)])
    assert sorted(len(sent.items) for sent in send.sent) == [1, 1, 1]


def test_a_failed_send_reaches_every_request_merged_into_it(
    make: Callable[..., TaskCoalescer],
) -> None:
    coalescer = make(RecordingSend(fail=BackendDown("the task broker is unreachable")))
    start = threading.Barrier(3)

    def run(sent: ToolTask) -> BaseException | None:
        start.wait()
        try:
            coalescer.run(sent, timeout_s=30)
        except BackendDown as error:
            return error
        return None

    with ThreadPoolExecutor(3) as pool:
        errors = list(pool.map(run, [task(1), task(2), task(3)]))
    assert all(isinstance(error, BackendDown) for error in errors), errors


def test_a_caller_gives_up_at_its_timeout(make: Callable[..., TaskCoalescer]) -> None:
    send = RecordingSend()
    send.release.clear()  # the send hangs (a worker that never answers)
    coalescer = make(send, window_s=0.0)
    with pytest.raises(Unavailable, match="no result"):
        coalescer.run(task(1), timeout_s=0.1)  # waits 0.1 s plus a margin of 5 s
    send.release.set()


def test_close_answers_what_still_waits(make: Callable[..., TaskCoalescer]) -> None:
    send = RecordingSend()
    send.release.clear()
    coalescer = make(send, max_items=1, window_s=0.0)
    outcomes: list[BaseException | None] = []

    def run(index: int) -> None:
        try:
            coalescer.run(task(index), timeout_s=30)
            outcomes.append(None)
        except Unavailable as error:
            outcomes.append(error)

    # Two senders (in_flight=2) hold a request each; the third waits in the queue.
    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    while len(send.sent) < 2:
        threading.Event().wait(0.01)
    closer = threading.Thread(target=coalescer.close)
    closer.start()
    send.release.set()  # the two in flight finish; the queued one must not wait 30 s
    closer.join(10)
    for thread in threads:
        thread.join(10)
    assert sorted(outcome is None for outcome in outcomes) == [False, True, True]
    with pytest.raises(Unavailable, match="shut down"):
        coalescer.run(task(9), timeout_s=1)
