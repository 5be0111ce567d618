"""The Slack bot over real HTTP: signed requests to the live API, Slack played by a fake on
loopback, the fixture models answering."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image
from slackbot.harness import CHANNEL, HUMAN, MAX_FILE_BYTES, Bot, content_id, mention
from workers.shapes_scenes import held_out, png_of

from mmrag.errors import NotFound
from mmrag.models.fixtures.evaluate_grounding import box_iou
from mmrag.slack.boxes import BOX_RGB
from mmrag.testing.fake_slack import BOT_ID, BOT_TOKEN, BOT_USER, TEAM, FakeSlack, Served
from mmrag.testing.slack_signing import (
    SIGNING_SECRET,
    action_body,
    command_body,
    event_body,
    signed_headers,
)

_IMAGE_ID = re.compile(r"\[([0-9a-f]{32})\]")


def posted_texts(fake: FakeSlack, method: str = "chat.postMessage") -> list[str]:
    return [str(call.args.get("text", "")) for call in fake.of(method)]


def quiet_for(fake: FakeSlack, seconds: float = 1.0) -> int:
    """How many calls the bot made in total, after it stayed idle for ``seconds``."""
    count = -1
    while count != len(fake.calls):
        count = len(fake.calls)
        time.sleep(seconds)
    return count


def test_bad_signature_stale_timestamp_and_replay_get_401(bot: Bot) -> None:
    body, headers = command_body("help", TEAM, f"{bot.fake.url}/respond")
    forged = bot.http.post(
        "/slack/events", content=body, headers={**headers, **signed_headers(body, "wrong")}
    )
    assert forged.status_code == 401
    stale = signed_headers(body, ts=int(time.time()) - 6 * 60)
    assert (
        bot.http.post("/slack/events", content=body, headers={**headers, **stale}).status_code
        == 401
    )
    fresh = {**headers, **signed_headers(body)}
    first = bot.http.post("/slack/events", content=body, headers=fresh)
    assert first.status_code == 200
    assert "search" in first.json()["text"]
    replayed = bot.http.post("/slack/events", content=body, headers=fresh)
    assert replayed.status_code == 401
    assert "replayed" in replayed.text


def test_unknown_subcommand_gets_the_help_ephemerally(bot: Bot) -> None:
    before = len(bot.fake.of("chat.postMessage"))
    response = bot.command("frobnicate the photos")
    assert response.status_code == 200
    answer = response.json()
    assert "unknown command `frobnicate`" in answer["text"]
    assert "/mmrag search" in answer["text"]
    assert answer["response_type"] == "ephemeral"
    quiet_for(bot.fake, 0.5)
    assert len(bot.fake.of("chat.postMessage")) == before


def test_slash_search_posts_thumbnails_of_this_workspace_only(bot: Bot) -> None:
    started = time.perf_counter()
    response = bot.command("search a red circle")
    assert time.perf_counter() - started < 3
    assert response.status_code == 200
    message = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if "red circle" in c.args["text"]]
    )[0]
    assert message.args["channel"] == CHANNEL
    shown = re.findall(r"`([0-9a-f]{32})`", json.dumps(message.args["blocks"]))
    assert shown
    assert set(shown) <= set(bot.scenes)
    complete = bot.fake.wait_for(lambda f: f.of("files.completeUploadExternal"))[0]
    assert complete.args["channel_id"] == CHANNEL
    assert complete.args["thread_ts"] == message.reply["ts"]  # in the results' thread
    files = json.loads(complete.args["files"])
    assert len(files) == min(len(shown), 4)
    for entry in files:
        Image.open(io.BytesIO(bot.fake.uploads[entry["id"]])).verify()
    assert files[0]["title"].startswith("1. score")


def magenta_box(png: bytes) -> tuple[tuple[float, float, float, float], Image.Image]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(image)
    ys, xs = np.nonzero(np.all(pixels == BOX_RGB, axis=-1))
    assert len(xs), "no box drawn"
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), image


def wait_for_tool(bot: Bot, tool: str, timeout: float = 1800.0) -> None:
    """On a cold fixture cache the grounding model is still being trained: wait for it."""
    deadline = time.monotonic() + timeout
    while bot.http.get("/readyz").json()["tools"][tool] != "ok":
        assert time.monotonic() < deadline, f"{tool} never became ready"
        time.sleep(2)


def test_mention_with_an_image_grounds_it_and_draws_the_box(bot: Bot) -> None:
    wait_for_tool(bot, "ground")
    image_id, scene = next((i, s) for i, s in bot.scenes.items() if s.find("blue", "triangle"))
    shared = bot.share("shelf.png", png_of(scene))
    uploads_before = len(bot.fake.of("files.completeUploadExternal"))
    event = mention("where is the blue triangle?", "1700000100.000100", files=[shared])
    assert bot.event(event).status_code == 200
    answer = bot.fake.wait_for(lambda f: [c for c in f.of("chat.update") if c.args.get("blocks")])[
        -1
    ]
    working = [c for c in bot.fake.of("chat.postMessage") if "Working on it" in c.args["text"]]
    working_message = next(c for c in working if "blue triangle" in c.args["text"])
    assert working_message.args["thread_ts"] == "1700000100.000100"
    progress = [c.args["text"] for c in bot.fake.of("chat.update")]
    assert any("Plan: ground" in text for text in progress)
    assert image_id in answer.args["text"]
    complete = bot.fake.wait_for(lambda f: f.of("files.completeUploadExternal")[uploads_before:])[0]
    assert complete.args["thread_ts"] == "1700000100.000100"
    [entry] = json.loads(complete.args["files"])
    drawn, image = magenta_box(bot.fake.uploads[entry["id"]])
    scale = image.width / scene.image.width
    truth = tuple(v * scale for v in scene.find("blue", "triangle")[0].box)
    assert box_iou(drawn, truth) >= 0.5  # type: ignore[arg-type]
    # Downloaded with the bot's token; indexed with its Slack origin, for this workspace.
    assert ("/files/shelf.png", f"Bearer {BOT_TOKEN}") in bot.fake.downloads
    services = bot.server.app.state.services
    payload = services.image(image_id, f"slack:{TEAM}")
    assert payload["metadata"]["slack"]["team"] == TEAM
    assert payload["metadata"]["slack"]["file"].startswith("F")
    assert payload["tenant"] == f"slack:{TEAM}"
    # The workspace's point is its own: the API's default tenant does not see it.
    assert bot.http.get(f"/v1/images/{image_id}").status_code == 404


def test_follow_ups_in_a_thread_continue_the_conversation(bot: Bot) -> None:
    root = "1700000200.000200"
    assert bot.event(mention("show me a green square", root)).status_code == 200

    def answers(f: FakeSlack) -> list[str]:
        return answers_in(f, CHANNEL, root)

    first = bot.fake.wait_for(answers)[0]
    first_ids = _IMAGE_ID.findall(first)
    assert len(set(first_ids)) >= 2
    assert set(first_ids) <= set(bot.scenes)
    follow = mention("and the second one?", "1700000201.000201", thread_ts=root)
    assert bot.event(follow).status_code == 200
    both = bot.fake.wait_for(lambda f: len(answers(f)) >= 2 and answers(f))
    second_ids = set(_IMAGE_ID.findall(both[1]))
    assert second_ids == {list(dict.fromkeys(first_ids))[1]}


def test_a_retried_event_is_done_once(bot: Bot) -> None:
    body, headers = event_body(
        mention("describe a yellow square", "1700000300.000300"), "EvRETRY0001", TEAM
    )
    assert bot.send(body, headers).status_code == 200
    time.sleep(1.1)  # a retry carries a new timestamp, so a new signature
    retried = bot.send(
        body, headers, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert retried.status_code == 200
    quiet_for(bot.fake)
    working = [t for t in posted_texts(bot.fake) if "yellow square" in t and "Working" in t]
    assert len(working) == 1


def test_the_url_verification_challenge_is_answered(bot: Bot) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
    response = bot.send(body, {"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"challenge": "c-123"}


def test_an_event_the_bot_has_no_use_for_still_gets_its_200(bot: Bot) -> None:
    event = {"type": "app_home_opened", "user": HUMAN, "channel": "D0DIRECT01", "tab": "home"}
    assert bot.event(event).status_code == 200


def test_bots_and_other_workspaces_start_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_for(bot.fake, 0.5)
    before = len(bot.fake.calls)
    other_bot = mention("find a red circle", "1700000400.000400", bot_id="B0OTHER001")
    itself = {
        **mention("find a red circle", "1700000401.000401"),
        "user": BOT_USER,
        "bot_id": BOT_ID,
    }
    assert bot.event(other_bot).status_code == 200
    assert bot.event(itself).status_code == 200
    stranger = bot.event(mention("find a red circle", "1700000402.000402"), team="T0STRANGER")
    assert stranger.status_code == 200
    quiet_for(bot.fake)
    methods = [call.method for call in bot.fake.calls[before:]]
    assert "chat.postMessage" not in methods
    assert "chat.update" not in methods
    refused = bot.command("search a red circle", team="T0STRANGER")
    assert refused.status_code == 200
    quiet_for(bot.fake, 0.5)
    assert [c.args for c in bot.fake.of("response_url")][-1]["text"]
    assert "chat.postMessage" not in [call.method for call in bot.fake.calls[before:]]
    assert "T0STRANGER" in caplog.text  # the refusal was logged ...
    assert BOT_TOKEN not in caplog.text  # ... and no secret with it
    assert SIGNING_SECRET not in caplog.text


def test_files_off_slack_oversized_or_corrupt_are_refused_ephemerally(bot: Bot) -> None:
    scene = next(iter(bot.scenes.values()))
    off_slack = bot.share("x.png", png_of(scene))
    redirected = bot.share("redirected.png", b"")
    bot.fake.files["redirected.png"] = Served(redirect="http://localhost:1/evil.png")
    # Declared small, served large: caught by the Content-Length, or while reading.
    lying = bot.share("lying.png", b"\x89PNG" + b"\0" * (MAX_FILE_BYTES + 10))
    unbounded = bot.share("unbounded.png", b"\x89PNG" + b"\0" * (MAX_FILE_BYTES + 10))
    bot.fake.files["unbounded.png"].hide_length = True
    files = [
        {**off_slack, "url_private_download": "http://example.com/x.png"},
        redirected,
        {**bot.share("huge.png", b"0"), "size": MAX_FILE_BYTES + 1},
        {**lying, "size": 1000},
        {**unbounded, "size": 1000},
        bot.share("corrupt.png", b"\x89PNG\r\n\x1a\n this is not an image"),
    ]
    event = mention("what is on this shelf?", "1700000500.000500", files=files)
    assert bot.event(event).status_code == 200
    note = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postEphemeral") if "could not use" in c.args["text"]]
    )[-1]
    text = note.args["text"]
    assert note.args["user"] == HUMAN
    assert "example.com is not one of Slack's hosts" in text
    assert "localhost is not one of Slack's hosts" in text
    assert f"huge.png is {MAX_FILE_BYTES + 1} bytes" in text
    assert f"lying.png is {MAX_FILE_BYTES + 14} bytes" in text
    assert f"unbounded.png is over {MAX_FILE_BYTES} bytes" in text
    assert "corrupt.png" in text
    assert BOT_TOKEN not in text
    quiet_for(bot.fake)
    assert not [t for t in posted_texts(bot.fake) if "this shelf" in t]
    assert not [d for d in bot.fake.downloads if "evil" in d[0]]
    assert content_id(png_of(scene)) in bot.scenes


def test_annotate_runs_a_job_on_the_channels_last_images_and_reports_it(bot: Bot) -> None:
    scenes = held_out(15)[12:]  # never indexed before: nothing to skip
    bot.fake.history[CHANNEL] = [
        {"ts": f"169000000{i}.000100", "files": [bot.share(f"recent-{i}.png", png_of(scene))]}
        for i, scene in enumerate(scenes)
    ]
    response = bot.command("annotate 2 --caption")
    assert response.status_code == 200
    # The newest two (history comes newest first) now belong to the workspace too.
    bot.scenes.update({content_id(png_of(scene)): scene for scene in scenes[:2]})
    started = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if "Started job" in c.args["text"]]
    )[0]
    assert "on 2 images: caption" in started.args["text"]
    job_id = re.findall(r"`([0-9a-f]{32})`", started.args["text"])[0]
    thread = started.reply["ts"]

    def finished(f: FakeSlack) -> list[str]:
        return [
            str(c.args["text"])
            for c in f.of("chat.postMessage")
            if c.args.get("thread_ts") == thread and "completed" in c.args["text"]
        ]

    [done] = bot.fake.wait_for(finished)
    assert "2 done" in done
    assert f"https://mmrag.example.com/v1/jobs/{job_id}/export?format=coco" in done
    status = bot.command(f"status {job_id}").json()
    assert status["response_type"] == "ephemeral"
    assert "is completed: 2/2" in status["text"]
    # Another workspace's view of the same job: none.
    jobs = bot.server.app.state.jobs
    with pytest.raises(NotFound):
        jobs.status(job_id, "slack:T0STRANGER")
    unknown = bot.command("status " + "0" * 32).json()
    assert "no job with id" in unknown["text"]


def test_slash_ask_starts_a_thread_with_the_question_and_its_answer(bot: Bot) -> None:
    response = bot.command("ask show me a yellow circle")
    assert response.status_code == 200
    working = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if "yellow circle" in c.args["text"]]
    )[0]
    assert working.args.get("thread_ts") is None  # a new top-level message: the thread's root
    ts = working.reply["ts"]
    answer = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.update") if c.args["ts"] == ts and c.args.get("blocks")]
    )[0]
    assert answer.args["text"].startswith("> show me a yellow circle\n")
    assert set(_IMAGE_ID.findall(answer.args["text"])) <= set(bot.scenes)


def answers_in(fake: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    """The answers that replaced the bot's "working on it" messages in a thread."""
    ours = {
        c.reply["ts"]
        for c in fake.of("chat.postMessage")
        if c.args["channel"] == channel and c.args.get("thread_ts") == thread_ts
    }
    return [
        str(c.args["text"])
        for c in fake.of("chat.update")
        if c.args.get("blocks") and c.args["ts"] in ours
    ]


def test_a_direct_message_with_an_image_asks_about_that_image(bot: Bot) -> None:
    image_id, scene = next(iter(bot.scenes.items()))
    shared = bot.share("dm-shelf.png", png_of(scene))
    ts = "1700000600.000600"
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": "D0DIRECT01",
        "user": HUMAN,
        "text": "what is on this shelf?",
        "ts": ts,
        "subtype": "file_share",
        "files": [shared],
    }
    # Shared from elsewhere: the event names the file only, files.info describes it.
    bot.fake.file_info[shared["id"]] = shared
    event["files"] = [{"id": shared["id"], "file_access": "check_file_info"}]
    assert bot.event(event).status_code == 200
    [answer] = bot.fake.wait_for(lambda f: answers_in(f, "D0DIRECT01", ts))
    assert _IMAGE_ID.findall(answer) == [image_id]  # about the shared image, and it alone
    assert bot.fake.of("files.info")[-1].args["file"] == shared["id"]
    progress = [c.args["text"] for c in bot.fake.of("chat.update") if not c.args.get("blocks")]
    assert any("what is on this shelf?" in text and "Plan: " in text for text in progress)


def test_a_rate_limited_update_is_sent_again(bot: Bot) -> None:
    bot.fake.throttle["chat.update"] = 1
    root = "1700000700.000700"
    assert bot.event(mention("show me a blue square", root)).status_code == 200
    [answer] = bot.fake.wait_for(lambda f: answers_in(f, CHANNEL, root))
    assert bot.fake.throttled == ["chat.update"]
    assert _IMAGE_ID.findall(answer)


def test_more_like_this_searches_by_example_in_the_results_thread(bot: Bot) -> None:
    bot.command("search a green circle")
    results = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postMessage") if "green circle" in c.args["text"]]
    )[0]
    button = results.args["blocks"][1]["accessory"]
    assert button["text"]["text"] == "More like this"
    example, ts = button["value"], results.reply["ts"]
    click = action_body(button["action_id"], example, TEAM, CHANNEL, HUMAN, ts, bot.fake.url)
    assert bot.send(*click).status_code == 200

    def similar(f: FakeSlack) -> list[Any]:
        return [c for c in f.of("chat.postMessage") if f"images like `{example}`" in c.args["text"]]

    [more] = bot.fake.wait_for(similar)
    assert more.args["thread_ts"] == ts
    shown = re.findall(r"`([0-9a-f]{32})`", json.dumps(more.args["blocks"][1:]))
    assert shown
    assert example not in shown  # the example itself is left out
    assert set(shown) <= set(bot.scenes)
    # A forged click naming an image of no workspace's: nothing of it is shown.
    outsider = next(iter(bot.outsiders))
    forged = action_body(button["action_id"], outsider, TEAM, CHANNEL, HUMAN, ts, bot.fake.url)
    assert bot.send(*forged).status_code == 200
    note = bot.fake.wait_for(
        lambda f: [c for c in f.of("chat.postEphemeral") if outsider in c.args["text"]]
    )[0]
    assert "no image with id" in note.args["text"]
    assert not [c for c in bot.fake.of("chat.postMessage") if outsider in c.args["text"]]
