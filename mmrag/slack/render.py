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
            lines.append(f"• {quoted(str(data['tool']))}{on}…")
        elif event == "tool_end":
            # A tool's error can echo the question: shown as data, like every text from it.
            tool = quoted(str(data["tool"]))
            if "error" in data:
                outcome = f"failed: {quoted(str(data['error']))}"
            elif "ms" in data:
                outcome = f"done in {data['ms']:g} ms"
            else:
                outcome = "done"  # a confirmed job's step: it waited on a person, not timed
            line = f"• {tool}: {outcome}"
            # A resumed thread's step ends with no start of its own (it started last turn).
            if lines[-1].startswith(f"• {tool}") and lines[-1].endswith("…"):
                lines[-1] = line
            else:
                lines.append(line)
    return "\n".join(lines)


def answer_blocks(
    result: Mapping[str, Any], asked: str | None = None, asker: str | None = None
) -> tuple[str, Blocks]:
    """The answer as the message that replaces "working on it": text, plus a context line.
    ``asked`` (the question) heads it when the message starts the thread (a slash command's
    ask), so the thread says what was asked. A job the agent proposes (``pending``) is shown
    with "Start job" and "Don't" buttons that only ``asker`` may press."""
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
    pending = result.get("pending")
    if pending and asker is not None:
        blocks[0] = section(proposal_text(pending))
        blocks.append(proposal_buttons(asker))
        text = proposal_text(pending)
    return clip(text), blocks


# The action ids of a proposed job's buttons; their value is the Slack user who was asked.
START_JOB = "mmrag_start_job"
DROP_JOB = "mmrag_drop_job"


def proposal_text(pending: Mapping[str, Any]) -> str:
    """A proposed job, readably: what it does and to how many images (the agent's own text
    tells API callers to send ``confirm``; here the buttons do that)."""
    count = int(pending["images"])
    what = (
        "caption"
        if pending["task"] == "caption"
        else f"detect {quoted(', '.join(map(str, pending.get('labels', []))))} in"
    )
    shown = ", ".join(f"`{image_id}`" for image_id in list(pending["image_ids"])[:5])
    more = f" and {count - 5} more" if count > 5 else ""
    return (
        f":gear: I can start a job to {what} the {count} image{'s' * (count != 1)} I found "
        f"({shown}{more}). Start it?"
    )


def proposal_buttons(asker: str) -> dict[str, Any]:
    def button(label: str, action_id: str, style: str | None) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": action_id,
            "value": asker,
        }
        if style is not None:
            found["style"] = style
        return found

    return {
        "type": "actions",
        "elements": [button("Start job", START_JOB, "primary"), button("Don't", DROP_JOB, None)],
    }


def proposal_answer(confirm: bool) -> str:
    """What the click says to the agent (and the progress message shows)."""
    return "Start the job." if confirm else "Don't start the job."


def not_your_proposal(asker: str) -> str:
    return f":no_entry_sign: Only <@{quoted(asker)}> can answer this proposal."


def started_job(result: Mapping[str, Any]) -> str | None:
    """The id of the job an answer started, from its start_job step's outcome."""
    for entry in result.get("trace", []):
        if entry.get("tool") != "start_job":
            continue
        for outcome in entry.get("outputs", []):
            if outcome.get("started"):
                return str(outcome["job_id"])
    return None


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
