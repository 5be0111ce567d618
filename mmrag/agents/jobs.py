"""The agent's one tool that starts work: a bulk job over the images a search found, which
it only proposes. The graph pauses on a LangGraph interrupt; the caller answers in the same
thread (``confirm``), and only then is the job submitted. Threads are keyed by the caller
(agents/agent.py), so no one else can confirm it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmrag.agents.tools import StartJobArgs
from mmrag.workers.jobs.spec import JobSpec

# Submits a job for a tenant (None: untenanted) and returns its id.
JobStarter = Callable[[JobSpec, str | None], str]


def proposal(args: StartJobArgs, image_ids: list[str]) -> dict[str, Any]:
    """What the user is asked to confirm: plain facts, no image bytes."""
    found: dict[str, Any] = {"task": args.task, "images": len(image_ids), "image_ids": image_ids}
    if args.labels:
        found["labels"] = list(args.labels)
    return found


def spec_of(args: StartJobArgs, image_ids: list[str]) -> JobSpec:
    task: dict[str, Any] = {"task": args.task}
    if args.labels:
        task["labels"] = list(args.labels)
    return JobSpec.model_validate(
        {"source": {"kind": "indexed", "ids": image_ids}, "tasks": [task]}
    )


def asked(found: dict[str, Any]) -> str:
    """The question put to the user."""
    what = "caption" if found["task"] == "caption" else f"detect {', '.join(found['labels'])} in"
    return (
        f"I can start a job to {what} the {found['images']} images I found. Reply in this "
        "thread with confirm: true to start it, or confirm: false to drop it."
    )
