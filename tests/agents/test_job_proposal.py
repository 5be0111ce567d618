"""The agent's one tool that starts work: it proposes a job, waits on a LangGraph interrupt,
and starts it only when the same caller confirms in the same thread; a real job service
runs it on a real store with the fixture models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents.conftest import world_settings
from agents.fake_openai import FakeOpenAI, captioning_proposal
from workers.shapes_scenes import held_out, index_scenes

from mmrag.errors import InvalidInput
from mmrag.services import Services
from mmrag.workers.jobs.service import JobService

pytestmark = pytest.mark.usefixtures("clean_env")
PLAN = captioning_proposal("red circle", 3)


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.reply = PLAN
        yield fake


@pytest.fixture
def services(tmp_path: Path, llm: FakeOpenAI) -> Iterator[Services]:
    settings = world_settings(
        tmp_path / "data", "fixture:shapes-vlm", planner="llm", llm_url=llm.url
    )
    opened = Services.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def test_a_job_starts_only_when_its_caller_confirms(services: Services) -> None:
    index_scenes(services, held_out(4))
    jobs = JobService.open(services)
    jobs.start()
    try:
        agent = services.agent()
        services.job_starter = jobs.submit_for_agent
        asked = agent.ask("caption every red circle photo", thread_id="t", owner="alice")
        assert asked.pending is not None
        assert asked.pending["task"] == "caption"
        hits = [out["image_id"] for out in asked.trace[0]["outputs"]]
        assert asked.pending["image_ids"] == hits
        assert asked.answer.startswith("I can start a job to caption the 3 images I found.")
        assert jobs.page(10, 0)[1] == 0  # nothing started yet
        # Another caller's thread of the same name holds nothing to confirm.
        with pytest.raises(InvalidInput, match="nothing in this thread waits"):
            agent.ask("yes", thread_id="t", owner="mallory", confirm=True)
        with pytest.raises(InvalidInput, match="give the thread_id"):
            agent.ask("yes", owner="alice", confirm=True)
        assert jobs.page(10, 0)[1] == 0
        done = agent.ask("yes", thread_id="t", owner="alice", confirm=True)
        assert done.pending is None
        [outcome] = done.trace[-1]["outputs"]
        assert outcome["started"] is True
        assert done.answer.startswith(f"I started job {outcome['job_id']} to caption 3 images")
        status = jobs.status(outcome["job_id"])
        deadline = time.monotonic() + 60
        while status.state != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = jobs.status(outcome["job_id"])
        assert status.state == "completed", status
        assert status.total == 3
        assert status.counts["done"] == 3
        # Confirmed once: the thread waits on nothing any more.
        with pytest.raises(InvalidInput, match="nothing in this thread waits"):
            agent.ask("yes", thread_id="t", owner="alice", confirm=True)
    finally:
        jobs.close()


def test_a_declined_job_never_starts(services: Services) -> None:
    index_scenes(services, held_out(3))
    agent = services.agent()
    started: list[str] = []

    def starter(spec: object, tenant: str | None) -> str:
        started.append("x")
        return "never"

    services.job_starter = starter
    agent.ask("caption every red circle photo", thread_id="d")
    declined = agent.ask("no", thread_id="d", confirm=False)
    assert started == []
    assert declined.answer == "I did not start the caption job, as you asked."
    assert declined.trace[-1]["outputs"][0]["started"] is False


def test_a_thread_another_tenant_started_cannot_be_confirmed(services: Services) -> None:
    # Owner strings of two tenants could coincide (a default-tenant key named "acme/bob"
    # and tenant acme's key "bob"): the thread's tenant must match the confirming caller's.
    index_scenes(services, held_out(3))
    agent = services.agent()
    started: list[str | None] = []

    def starter(spec: object, tenant: str | None) -> str:
        started.append(tenant)
        return "job-1"

    services.job_starter = starter
    asked = agent.ask("caption every red circle photo", thread_id="x", owner="acme/bob")
    assert asked.pending is not None
    with pytest.raises(InvalidInput, match="nothing in this thread waits"):
        agent.ask("yes", thread_id="x", owner="acme/bob", tenant="acme", confirm=True)
    with pytest.raises(InvalidInput, match="nothing in this thread waits"):
        agent.check_pending("x", "acme/bob", "acme")
    assert started == []
    agent.check_pending("x", "acme/bob", None)
