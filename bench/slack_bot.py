"""Slack bot latency: the ack Slack waits for, and the answer people wait for.

An API with the bot on runs on a loopback port (uvicorn, real HTTP) with the offline fixture
models; Slack's Web API is played by ``mmrag.testing.fake_slack`` on another port. ``scenes``
shapes scenes are shared with the bot in a direct message first (downloaded, indexed for the
workspace). Then ``questions`` mentions arrive at once, and while they are being answered
up to ``acks`` signed ``/mmrag help`` requests are sent one after another (only those sent
before the last answer count):

- ack: time from sending a signed request to its HTTP 200, for the mentions themselves and
  for the slash commands sent while the questions are being answered (Slack allows 3 s);
- answer: time from sending a mention to the bot's ``chat.update`` that replaces "working on
  it" with the answer, after one warm-up question of each kind (retrieval with shapes-clip;
  with shapes-grounding built, half the questions also ground a box and upload the drawn
  image, which is counted too).

    .venv/bin/python -m bench.slack_bot            # 16 questions, 200 acks
    .venv/bin/python -m bench.slack_bot --quick    # 16 questions, 50 acks
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.common import emit, percentiles_ms
from mmrag.api.app import create_app
from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_scene
from mmrag.testing.fake_slack import BOT_TOKEN, BOT_USER, TEAM, FakeSlack, FakeSlackServer, Served
from mmrag.testing.slack_signing import SIGNING_SECRET, command_body, event_body, signed_headers

log = logging.getLogger("bench.slack_bot")
CHANNEL = "C0BENCH001"
QUESTIONS = ("find photos of a red circle", "where is the blue triangle?")


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    generate_scene(seed).image.save(out, "PNG")
    return out.getvalue()


def _signed_post(http: httpx.Client, body: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = http.post("/slack/events", content=body, headers={**headers, **signed_headers(body)})
    took = time.perf_counter() - started
    response.raise_for_status()
    return took


def _answered(fake: FakeSlack, thread_ts: str) -> float | None:
    """When the answer replaced the working message in ``thread_ts`` (None: not yet)."""
    working = {
        c.reply.get("ts")
        for c in fake.of("chat.postMessage")
        if c.args.get("thread_ts") == thread_ts
    }
    done = [
        c.at for c in fake.of("chat.update") if c.args.get("blocks") and c.args["ts"] in working
    ]
    return done[0] if done else None


def run(questions: int, acks: int, scenes: int, data_dir: Path) -> dict[str, Any]:
    with FakeSlackServer() as fake:
        settings = Settings(
            data_dir=data_dir,
            profile="offline",
            models={"device": "cpu", "cache_dir": default_cache_dir()},
            samples={"enabled": False},
            slack={
                "signing_secret": SIGNING_SECRET,
                "bot_token": BOT_TOKEN,
                "api_url": f"{fake.url}/api/",
                "file_hosts": ["127.0.0.1"],
                "workers": 4,
            },
        )
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                return _measure(http, fake, questions, acks, scenes)
        finally:
            server.should_exit = True
            thread.join(30)


def _measure(
    http: httpx.Client, fake: FakeSlack, questions: int, acks: int, scenes: int
) -> dict[str, Any]:
    files = []
    for seed in range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + scenes):
        fake.files[f"{seed}.png"] = Served(_png(seed))
        files.append(
            {
                "id": f"F{seed}",
                "name": f"{seed}.png",
                "mimetype": "image/png",
                "url_private_download": fake.file_url(f"{seed}.png"),
            }
        )
    share = {
        "type": "message",
        "channel_type": "im",
        "channel": "D0BENCH001",
        "user": "U0H",
        "text": "",
        "ts": "1600000000.000001",
        "subtype": "file_share",
        "files": files,
    }
    _signed_post(http, *event_body(share, "EvSHARE", TEAM))
    fake.wait_for(lambda f: f.of("chat.postMessage"), timeout=600)
    ground = http.get("/readyz").json()["tools"].get("ground") == "ok"
    asked = QUESTIONS if ground else QUESTIONS[:1]
    # Warm-up, not counted: the first question builds the agent (LangGraph's import takes
    # seconds) and loads the tools' models.
    for index, question in enumerate(asked):
        ts = f"1700000000.{index:06d}"
        warm = {
            "type": "app_mention",
            "user": "U0H",
            "channel": CHANNEL,
            "ts": ts,
            "text": f"<@{BOT_USER}> {question}",
        }
        _signed_post(http, *event_body(warm, f"EvWARM{index}", TEAM))
        fake.wait_for(partial(_answered, thread_ts=ts), timeout=600)

    sent: dict[str, float] = {}
    mention_acks: list[float] = []

    def mention(index: int) -> None:
        ts = f"1700100000.{index:06d}"
        event = {
            "type": "app_mention",
            "user": "U0H",
            "channel": CHANNEL,
            "ts": ts,
            "text": f"<@{BOT_USER}> {asked[index % len(asked)]}",
        }
        sent[ts] = time.perf_counter()
        mention_acks.append(_signed_post(http, *event_body(event, f"EvQ{index}", TEAM)))

    with ThreadPoolExecutor(questions) as pool:
        list(pool.map(mention, range(questions)))
    busy_acks: list[float] = []
    answered: dict[str, float] = {}
    deadline = time.monotonic() + 900
    while len(answered) < questions and time.monotonic() < deadline:
        if len(busy_acks) < acks:
            body = command_body("help", TEAM, f"{fake.url}/respond", channel=CHANNEL)
            busy_acks.append(_signed_post(http, *body))
        else:
            time.sleep(0.05)
        for ts in sent:
            if ts not in answered and (at := _answered(fake, ts)) is not None:
                answered[ts] = at - sent[ts]
    return {
        "questions": questions,
        "asked": list(asked),
        "scenes": scenes,
        "ack_mentions": {"n": len(mention_acks), **percentiles_ms(mention_acks)},
        "ack_while_answering": {"n": len(busy_acks), **percentiles_ms(busy_acks)},
        "mention_to_answer": {"n": len(answered), **percentiles_ms(list(answered.values()))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--questions", type=int, default=16, help="mentions sent at once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    acks = 50 if args.quick else 200
    with tempfile.TemporaryDirectory() as scratch:
        emit("slack_bot", run(args.questions, acks, 24, Path(scratch) / "data"))


if __name__ == "__main__":
    main()
