"""The agent's front door: check the question, run the graph, shape the result.

Conversations are threads of the SQLite checkpointer in the data dir (``thread_id``); a
turn keeps the previous turn's results so "and the second one?" can refer to them.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command, StateSnapshot
from pydantic import BaseModel

from mmrag.agents.answer import Answer, Citation
from mmrag.agents.graph import build_graph
from mmrag.agents.jobs import asked
from mmrag.agents.llm_composer import LlmComposer
from mmrag.agents.planner import Planner, PlanRequest, clean_question
from mmrag.agents.state import AgentState
from mmrag.agents.tools import Plan
from mmrag.config import AgentSettings
from mmrag.errors import InvalidInput
from mmrag.services import Services

_IMAGE_ID = re.compile(r"^[0-9a-f]{32}$")
_THREAD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# Answer text is streamed in pieces of about this many characters.
_TOKEN_CHARS = 24


class AskResult(BaseModel):
    answer: str
    citations: list[dict[str, Any]]
    weak_evidence: bool
    plan: dict[str, Any]
    trace: list[dict[str, Any]]
    thread_id: str
    took_ms: float
    # A job the agent proposes and waits to be confirmed in this thread (agents/jobs.py).
    pending: dict[str, Any] | None = None


class Agent:
    def __init__(
        self,
        services: Services,
        planner: Planner,
        settings: AgentSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._services = services
        self._clock = clock
        self._planner = planner
        self._settings = settings or services.settings.agent
        path = services.settings.conversations_path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The saver serialises its own use of the connection with a lock.
        self._connection = sqlite3.connect(str(path), check_same_thread=False)
        saver = SqliteSaver(self._connection)
        self._composer = LlmComposer(self._settings) if self._settings.composer == "llm" else None
        self._graph = build_graph(
            services,
            planner,
            self._settings,
            saver,
            clock,
            self._composer,
            # Read on confirmation: whoever opens the job service attaches it to the services.
            lambda: services.job_starter,
        )

    def close(self) -> None:
        self._planner.close()
        if self._composer is not None:
            self._composer.close()
        self._connection.close()

    def check(
        self,
        question: str,
        image_id: str | None,
        thread_id: str | None,
        tenant: str | None = None,
    ) -> str:
        """The question, stripped; bad input raises before anything runs. With a ``tenant``,
        an image it did not index is as unknown as one nobody indexed."""
        stripped = clean_question(question, self._settings.max_question_chars)
        if thread_id is not None and not _THREAD_ID.match(thread_id):
            raise InvalidInput("thread_id must be 1-128 letters, digits or _ . : -")
        if image_id is not None:
            if not _IMAGE_ID.match(image_id):
                raise InvalidInput("image_id must be 32 hex digits")
            self._services.image(image_id, tenant)  # NotFound for ids the store does not hold
        return stripped

    def plan(
        self,
        question: str,
        image_id: str | None = None,
        thread_id: str | None = None,
        owner: str | None = None,
        tenant: str | None = None,
    ) -> Plan:
        """The plan for the question; nothing is executed."""
        stripped = self.check(question, image_id, thread_id, tenant)
        previous = self._previous(thread_id, owner)
        return self._planner.plan(
            PlanRequest(
                question=stripped,
                has_image=image_id is not None,
                previous_ids=tuple(previous.get("previous_ids", [])),
                previous_steps=tuple(previous.get("previous_steps", [])),
                max_steps=self._settings.max_steps,
            )
        )

    def ask(
        self,
        question: str,
        image_id: str | None = None,
        thread_id: str | None = None,
        owner: str | None = None,
        tenant: str | None = None,
        confirm: bool | None = None,
    ) -> AskResult:
        result: AskResult | None = None
        for event, data in self.stream(question, image_id, thread_id, owner, tenant, confirm):
            if event == "answer":
                result = AskResult.model_validate(data)
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        image_id: str | None = None,
        thread_id: str | None = None,
        owner: str | None = None,
        tenant: str | None = None,
        confirm: bool | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``plan``, ``tool_start``/``tool_end`` per step, ``token`` pieces of the answer
        text, then ``answer`` with the whole result. ``owner`` (the API key's name) keeps
        each caller's threads apart; ``tenant`` limits retrieval to the images it indexed.
        ``confirm`` answers the job the thread's last turn proposed (true starts it)."""
        stripped = self.check(question, image_id, thread_id, tenant)
        thread = thread_id or uuid.uuid4().hex
        config = _config(thread, owner)
        started = time.perf_counter()
        source: AgentState | Command[Any]
        if confirm is not None:
            self.check_pending(thread_id, owner, tenant)
            source = Command(resume=confirm)
        else:
            source = {
                "question": stripped,
                "image_id": image_id,
                "tenant": tenant,
                "started": self._clock(),
            }
        for chunk in self._graph.stream(source, config, stream_mode="custom"):
            yield str(chunk["event"]), dict(chunk["data"])
        snapshot = self._graph.get_state(config)
        state = snapshot.values
        pending = _pending(snapshot)
        if pending is not None:
            answer = Answer(
                text=asked(pending),
                citations=[Citation(image_id=i) for i in pending["image_ids"]],
                weak_evidence=False,
            )
        else:
            answer = Answer.model_validate(state["answer"])
        for start in range(0, len(answer.text), _TOKEN_CHARS):
            yield "token", {"text": answer.text[start : start + _TOKEN_CHARS]}
        result = AskResult(
            answer=answer.text,
            citations=[c.model_dump(exclude_none=True) for c in answer.citations],
            weak_evidence=answer.weak_evidence,
            plan=state["plan"],
            trace=[dict(entry) for entry in state["trace"]],
            thread_id=thread,
            took_ms=round((time.perf_counter() - started) * 1000, 2),
            pending=pending,
        )
        yield "answer", result.model_dump()

    def check_pending(
        self, thread_id: str | None, owner: str | None, tenant: str | None = None
    ) -> None:
        """:class:`InvalidInput` unless the caller's thread waits for a confirmation. The
        thread is the caller's own (keyed by ``owner``): another key's same-named thread is
        another conversation, with nothing of this one's to confirm. A thread another tenant
        started is refused the same way, as if unknown: owner strings of different tenants
        could once coincide (a key named "acme/bob"), and the job would start for the
        tenant saved in the thread, not the caller's."""
        if thread_id is None:
            raise InvalidInput("confirm answers a proposal: give the thread_id it came in")
        snapshot = self._graph.get_state(_config(thread_id, owner))
        if _pending(snapshot) is None or snapshot.values.get("tenant") != tenant:
            raise InvalidInput("nothing in this thread waits for confirmation")

    def _previous(self, thread_id: str | None, owner: str | None) -> dict[str, Any]:
        if thread_id is None:
            return {}
        values: dict[str, Any] = self._graph.get_state(_config(thread_id, owner)).values
        return values


def _pending(snapshot: StateSnapshot) -> dict[str, Any] | None:
    """The job proposal a paused thread waits on, if it waits on one."""
    for waiting in snapshot.interrupts:
        if isinstance(waiting.value, dict) and "task" in waiting.value:
            return dict(waiting.value)
    return None


def _config(thread_id: str, owner: str | None) -> RunnableConfig:
    # With API keys on, each key has threads of its own: another key's "chat-1" is another
    # conversation, so no caller learns what a different one asked or was shown. "/" never
    # occurs in a thread id, so an owned id cannot collide with an unowned one.
    stored = thread_id if owner is None else f"{owner}/{thread_id}"
    return {"configurable": {"thread_id": stored}}
