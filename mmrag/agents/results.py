"""Result sets as values: the images a step keeps, in its order, for the next step (``on:
"last"``) and for the answer. A retrieve keeps its hits by rank, a ranked count its images
by count (cut to ``top``), a VQA step with ``keep`` only the images whose answer matches."""

from __future__ import annotations

import re
from typing import Any

from mmrag.agents.tools import CountArgs, Step, VqaArgs

Output = dict[str, Any]


def kept_outputs(step: Step, outputs: list[Output]) -> list[Output]:
    """The outputs the step keeps, best first."""
    good = [out for out in outputs if "error" not in out]
    args = step.parsed()
    if isinstance(args, CountArgs):
        counted = [out for out in good if "count" in out]
        if args.rank != "none":
            # Stable: among equal counts the better retrieval rank stays first.
            counted.sort(key=lambda out: -out["count"] if args.rank == "most" else out["count"])
        return counted[: args.top] if args.top else counted
    if isinstance(args, VqaArgs) and args.keep is not None:
        return [out for out in good if answer_is(out.get("answer", ""), args.keep)]
    return good


def kept_ids(step: Step, outputs: list[Output]) -> list[str]:
    return [out["image_id"] for out in kept_outputs(step, outputs)]


_YES = re.compile(r"^\s*(?:yes|yeah|yep|oui|ja|si|sí|true)\b", re.I)
_NO = re.compile(r"^\s*(?:no|nope|non|nein|false|none|0)\b", re.I)


def answer_is(answer: str, wanted: str) -> bool:
    """Whether a model's answer says ``yes`` or ``no``. Only its first word counts: the
    answer is data, and nothing later in it can make an image match."""
    pattern = _YES if wanted == "yes" else _NO
    return pattern.match(answer) is not None
