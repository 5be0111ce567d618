"""A job the agent proposes, answered from the page: the proposal shows its task and images,
"Start job" starts it (the job exists in the API and opens in the jobs view), "Don't" drops it,
and a read-only key's confirmation is refused as the page shows other problems."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from agents.fake_openai import FakeOpenAI, captioning_proposal
from api.live_server import LiveServer
from web.browser import open_page, ready, screenshots
from web.conftest import upload_scenes
from web.test_page_auth import sign_in, signed_in
from workers.shapes_scenes import held_out

from mmrag.config import AuthSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

KEYS = {"alice-secret-key": ["read", "write"], "bob-secret-key": ["read"]}
ALICE = {"Authorization": "Bearer alice-secret-key"}
PROPOSED = 3  # the fake planner's retrieve limit: the job's images


@dataclass
class Server:
    url: str
    client: httpx.Client  # signed in as alice


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Server]:
    """The LLM planner (a fake OpenAI server) proposes captioning the circles it finds."""
    keys = [
        {"name": key.split("-")[0], "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": s}
        for key, s in KEYS.items()
    ]
    with pytest.MonkeyPatch.context() as patch, FakeOpenAI() as llm:
        clear_mmrag_env(patch)
        llm.reply = captioning_proposal("circle", PROPOSED)
        settings = world_settings(
            tmp_path_factory.mktemp("web-proposal") / "data",
            "fixture:shapes-vlm",
            planner="llm",
            llm_url=llm.url,
        ).model_copy(update={"auth": AuthSettings.model_validate({"api_keys": keys})})
        with (
            LiveServer(settings) as live,
            httpx.Client(base_url=live.url, headers=ALICE, timeout=120) as client,
        ):
            upload_scenes(client, held_out(6))
            yield Server(live.url, client)


def propose(browser: Browser, server: Server, key: str) -> tuple[Page, list[str]]:
    """A page signed in with ``key`` whose question was answered with a proposal; the
    page's uncaught errors."""
    page, errors = open_page(browser, f"{server.url}/#ask")
    sign_in(page, key)
    signed_in(page)
    ready(page)
    page.fill("#ask-text", "caption every circle photo")
    page.press("#ask-text", "Enter")
    page.wait_for_selector("#chat .proposal button:has-text('Start job')", timeout=120_000)
    return page, errors.errors


def jobs(server: Server) -> list[str]:
    return [job["id"] for job in server.client.get("/v1/jobs").json()["items"]]


def test_start_job_starts_the_proposed_job_and_shows_it(browser: Browser, server: Server) -> None:
    page, errors = propose(browser, server, "alice-secret-key")
    proposal = page.locator("#chat .proposal")
    assert proposal.locator(".proposal-task").inner_text() == (
        f"Proposed job: Caption {PROPOSED} images."
    )
    assert proposal.locator("button.cite").count() == PROPOSED
    screenshots(page, "ask-proposal")
    before = jobs(server)
    proposal.locator("button:has-text('Start job')").click()
    # Both choices wait while the answer is on its way.
    assert proposal.locator('button:has-text("Don\'t")').is_disabled()
    link = page.locator("#chat li.turn").last.locator("button.job-link")
    link.wait_for(timeout=120_000)
    [started] = [job for job in jobs(server) if job not in before]
    answer = page.locator("#chat li.turn").last.locator(".answer").inner_text()
    assert f"I started job {started}" in answer
    assert proposal.inner_text() == "You started this job."
    job = server.client.get(f"/v1/jobs/{started}").json()
    assert job["total"] == PROPOSED
    link.click()
    assert page.get_attribute("#tab-jobs", "aria-selected") == "true"
    page.wait_for_function(
        f"() => document.querySelector('#job-title').textContent.startsWith('Job {started[:8]}')"
    )
    # A reload keeps the answered proposal answered: no buttons come back.
    page.reload()
    sign_in(page, "alice-secret-key")
    signed_in(page)
    page.click("#tab-ask")
    page.wait_for_selector("#chat li.turn:nth-child(2) button.job-link")
    assert page.locator("#chat .proposal").count() == 0
    assert not errors


def test_dont_drops_the_proposed_job(browser: Browser, server: Server) -> None:
    page, errors = propose(browser, server, "alice-secret-key")
    before = jobs(server)
    page.click('#chat .proposal button:has-text("Don\'t")')
    page.wait_for_function(
        "() => document.querySelector('#chat .proposal').textContent === 'You dropped this job.'",
        timeout=120_000,
    )
    answer = page.locator("#chat li.turn").last.locator(".answer").inner_text()
    assert "I did not start the caption job, as you asked." in answer
    assert page.locator("#chat button.job-link").count() == 0
    assert jobs(server) == before
    assert not errors


def test_a_read_only_keys_start_is_refused_and_the_choice_stays_open(
    browser: Browser, server: Server
) -> None:
    page, errors = propose(browser, server, "bob-secret-key")
    before = jobs(server)
    start = page.locator("#chat .proposal button:has-text('Start job')")
    start.click()
    refused = page.locator("#chat li.turn").last.locator(".status.error")
    refused.wait_for(timeout=60_000)
    assert refused.inner_text() == "API key 'bob' lacks the 'jobs' scope"
    page.wait_for_function(
        "() => !document.querySelector('#chat .proposal button.primary').disabled"
    )
    assert jobs(server) == before
    assert not errors
