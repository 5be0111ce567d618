"""What the bot says: plain mrkdwn text and Block Kit blocks, built from plain data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmrag.slack.commands import MAX_LAST
from mmrag.workers.jobs.records import ItemState

Blocks = list[dict[str, Any]]
# Slack refuses a section text over 3,000 characters and a message over 50 blocks.
_MAX_SECTION = 2900

HELP = "\n".join(
    [
        "*mmrag* searches and questions this workspace's images.",
        "• `/mmrag search <text>`: the best matching images, as thumbnails with scores",
        "• `/mmrag ask <question>`: an answer with its sources (and boxes where it found some)",
        f"• `/mmrag annotate [N] --caption --detect a,b`: caption and label the channel's last "
        f"N images (up to {MAX_LAST}) as a bulk job",
        "• `/mmrag status <job>`: how far a job is",
        "• Mention me (`@mmrag what is on this shelf?`) with or without an image, or write to "
        "me directly: I answer in the thread, and follow-ups there continue the conversation.",
    ]
)


def help_text(problem: str | None = None) -> str:
    return f"{problem}.\n\n{HELP}" if problem else HELP


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def clip(text: str, limit: int = _MAX_SECTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(text: str) -> str:
    """Text from the index shown as data: no mentions, links or formatting take effect."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def working(question: str) -> str:
    return f":hourglass_flowing_sand: Working on it: _{quoted(question)[:200]}_"


def progress(question: str, events: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The "working on it" message as the agent's events arrive: the plan, then each step."""
    lines = [working(question)]
    for event, data in events:
        if event == "plan":
            tools = " → ".join(str(step["tool"]) for step in data.get("steps", []))
            lines.append(f"Plan: {tools or 'nothing to run'}")
        elif event == "tool_start":
            count = len(data.get("image_ids", []))
            on = f" on {count} image{'s' * (count != 1)}" if count else ""
            lines.append(f"• {data['tool']}{on}…")
        elif event == "tool_end":
            outcome = (
                f"failed: {data['error']}" if "error" in data else f"done in {data['ms']:g} ms"
            )
            lines[-1] = f"• {data['tool']}: {outcome}"
    return "\n".join(lines)


def answer_blocks(result: Mapping[str, Any], asked: str | None = None) -> tuple[str, Blocks]:
    """The answer as the message that replaces "working on it": text, plus a context line.
    ``asked`` (the question) heads it when the message starts the thread (a slash command's
    ask), so the thread says what was asked."""
    text = quoted(str(result["answer"]) or "I found nothing to say.")
    if asked is not None:
        text = f"> {quoted(asked)}\n{text}"
    steps = " → ".join(str(step["tool"]) for step in result["plan"].get("steps", []))
    weak = " · evidence is weak" if result.get("weak_evidence") else ""
    context = f"{steps} · {result['took_ms']:.0f} ms{weak}"
    blocks: Blocks = [
        section(text),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    return clip(text), blocks


def hit_line(rank: int, image_id: str, score: float, caption: str) -> str:
    shown = f" · {quoted(caption)[:200]}" if caption else ""
    return f"*{rank}.* `{image_id}` · score {score:.3f}{shown}"


# The action id of the "More like this" button each search result carries.
MORE_LIKE_THIS = "mmrag_more_like_this"


def search_blocks(wanted: str, hits: Sequence[tuple[str, float, str]]) -> tuple[str, Blocks]:
    """``wanted`` is already mrkdwn (the caller quotes what came from a person)."""
    if not hits:
        message = f"No images match {wanted} in this workspace."
        return message, [section(message)]
    header = f"Top {len(hits)} for {wanted}:"
    blocks: Blocks = [section(header)]
    for rank, (image_id, score, caption) in enumerate(hits, start=1):
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "More like this"},
            "action_id": MORE_LIKE_THIS,
            "value": image_id,
        }
        blocks.append({**section(hit_line(rank, image_id, score, caption)), "accessory": button})
    return header, blocks


def failure(detail: str) -> str:
    return f":warning: {quoted(detail)}"


def job_started(job_id: str, images: int, tasks: Sequence[str]) -> str:
    return (
        f":gear: Started job `{job_id}` on {images} image{'s' * (images != 1)}: "
        f"{', '.join(tasks)}. I will post its progress here."
    )


def job_counts(counts: Mapping[ItemState, int]) -> str:
    shown: tuple[ItemState, ...] = ("done", "failed", "skipped", "running", "pending")
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in shown if counts.get(name))


def job_progress(job_id: str, settled: int, total: int, counts: Mapping[ItemState, int]) -> str:
    return f"Job `{job_id}`: {settled}/{total} ({job_counts(counts)})"


def job_finished(job_id: str, state: str, counts: Mapping[ItemState, int], export: str) -> str:
    mark = ":white_check_mark:" if state == "completed" else ":no_entry_sign:"
    return f"{mark} Job `{job_id}` {state}: {job_counts(counts)}. Export: <{export}|COCO JSON>"


def job_status(
    job_id: str, state: str, settled: int, total: int, counts: Mapping[ItemState, int]
) -> str:
    return f"Job `{job_id}` is {state}: {settled}/{total} ({job_counts(counts) or 'nothing yet'})"
