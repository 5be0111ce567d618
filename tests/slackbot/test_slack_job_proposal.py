"""A job the agent proposes in Slack: the answer carries "Start job" and "Don't" buttons; only
the person who asked may press them, "Start job" starts the job (and its progress follows in
the thread), "Don't" drops it, and each click updates the proposal's message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from agents.conftest import clear_mmrag_env, world_settings
from agents.fake_openai import FakeOpenAI, captioning_proposal
from api.live_server import LiveServer
from slackbot.harness import CHANNEL, HUMAN, Bot, slack_settings
from workers.shapes_scenes import held_out

from mmrag.config import Settings
from mmrag.slack import render
from mmrag.testing.fake_slack import TEAM, Call, FakeSlack, FakeSlackServer
from mmrag.testing.slack_signing import action_body

PROPOSED = 3  # the fake planner's retrieve limit: the job's images
STRANGER = "U0OTHER0002"


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """The LLM planner (a fake OpenAI server) proposes captioning what it finds among the
    images the workspace shared."""
    with pytest.MonkeyPatch.context() as patch, FakeSlackServer() as fake, FakeOpenAI() as llm:
        clear_mmrag_env(patch)
        llm.reply = captioning_proposal("circle", PROPOSED)
        base = world_settings(
            tmp_path_factory.mktemp("slack-proposal") / "data",
            "fixture:shapes-vlm",
            planner="llm",
            llm_url=llm.url,
        )
        settings = Settings.model_validate(
            {**base.model_dump(exclude={"slack"}), "slack": slack_settings(fake)}
        )
        with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            bot = Bot(server, http, fake, {}, {})
            mine = held_out(5)
            bot.index_in_dm(mine, "proposal", "D0DIRECT02", "1600000000.000009")
            yield bot


def propose(bot: Bot, question: str) -> tuple[str, dict[str, Any]]:
    """Asks by slash command; the answer's message ts and its buttons block."""
    assert bot.command(f"ask {question}").status_code == 200
    working = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if question in c.args["text"]]
    )[0]
    ts = str(working.reply["ts"])
    answer = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.update") if c.args["ts"] == ts and c.args.get("blocks")]
    )[0]
    [buttons] = [b for b in answer.args["blocks"] if b["type"] == "actions"]
    assert f"caption the {PROPOSED} images I found" in answer.args["text"]
    return ts, buttons


def click(bot: Bot, buttons: dict[str, Any], label: str, ts: str, user: str = HUMAN) -> None:
    [button] = [b for b in buttons["elements"] if b["text"]["text"] == label]
    body = action_body(button["action_id"], button["value"], TEAM, CHANNEL, user, ts, bot.fake.url)
    assert bot.send(*body).status_code == 200


def updates(fake: FakeSlack, ts: str, words: str) -> list[Call]:
    return [c for c in fake.of("chat.update") if c.args["ts"] == ts and words in c.args["text"]]


def notes(fake: FakeSlack, words: str) -> list[Call]:
    return [c for c in fake.of("chat.postEphemeral") if words in c.args["text"]]


def test_start_job_by_the_asker_starts_it_and_follows_it(bot: Bot) -> None:
    ts, buttons = propose(bot, "caption every circle photo")
    assert [b["text"]["text"] for b in buttons["elements"]] == ["Start job", "Don't"]
    jobs = bot.server.app.state.jobs
    tenant = f"slack:{TEAM}"
    # Someone else in the channel may read the proposal, not answer it.
    click(bot, buttons, "Start job", ts, user=STRANGER)
    [refused] = bot.fake.wait_for(lambda f: notes(f, "can answer this proposal"))
    assert refused.args["user"] == STRANGER
    assert refused.args["text"] == render.not_your_proposal(HUMAN)
    assert not jobs.records(tenant)

    click(bot, buttons, "Start job", ts)
    [started] = bot.fake.wait_for(lambda f: updates(f, ts, "I started job"))
    assert not [b for b in started.args["blocks"] if b["type"] == "actions"]  # answered
    [job] = jobs.records(tenant)
    assert f"I started job {job.id}" in started.args["text"]
    assert jobs.status(job.id, tenant).total == PROPOSED
    # Its progress follows in the thread, as an annotate job's does.
    bot.fake.wait_for(
        lambda f: [
            c
            for c in f.of("chat.postMessage")
            if c.args.get("thread_ts") == ts and f"Job `{job.id}` completed" in c.args["text"]
        ]
    )
    # A second click finds nothing waiting: said to the clicker, the message left alone.
    click(bot, buttons, "Start job", ts)
    bot.fake.wait_for(lambda f: notes(f, "nothing in this thread waits"))
    assert len(jobs.records(tenant)) == 1


def test_dont_drops_the_proposed_job(bot: Bot) -> None:
    jobs = bot.server.app.state.jobs
    before = len(jobs.records(f"slack:{TEAM}"))
    ts, buttons = propose(bot, "caption the circles again")
    click(bot, buttons, "Don't", ts)
    [dropped] = bot.fake.wait_for(lambda f: updates(f, ts, "I did not start the caption job"))
    assert not [b for b in dropped.args["blocks"] if b["type"] == "actions"]
    assert len(jobs.records(f"slack:{TEAM}")) == before
