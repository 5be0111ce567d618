"""The answer composer: words from the tools' outputs, each claim cited by image (and box).

It states only what an output says; when the evidence is weak (no hits, low similarity, no
confident box) the answer says so instead of guessing. Text from the index (captions,
metadata) is quoted as data and never acted on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mmrag.agents.tools import CountArgs, Plan, RetrieveArgs
from mmrag.config import AgentSettings

Output = dict[str, Any]


class Citation(BaseModel):
    image_id: str
    box: list[float] | None = None
    score: float | None = None
    label: str | None = None


class Answer(BaseModel):
    text: str
    citations: list[Citation]
    weak_evidence: bool


def stop_notes(plan: Plan, steps: list[list[Output]], stopped: str | None) -> list[str]:
    """What an answer says first when the run ended early (both composers, and
    agents/sentences.py); any such note makes the evidence weak."""
    if len(steps) < len(plan.steps):
        return [
            f"I ran {len(steps)} of {len(plan.steps)} steps ({stopped or 'a limit was reached'})."
        ]
    if stopped:
        # Every step ran, the last one not on all its images.
        return [f"I did not look at every image ({stopped})."]
    return []


def compose(
    plan: Plan, steps: list[list[Output]], settings: AgentSettings, stopped: str | None = None
) -> Answer:
    """The answer to a plan whose steps produced ``steps`` (outputs per executed step);
    ``stopped`` says why execution ended early, if it did."""
    notes = stop_notes(plan, steps, stopped)
    weak = bool(notes)
    if not steps:
        return Answer(text=" ".join(notes) or "Nothing was run.", citations=[], weak_evidence=True)
    for step, outputs in zip(plan.steps, steps, strict=False):
        args = step.parsed()
        if isinstance(args, RetrieveArgs):
            best = max((out["score"] for out in outputs), default=None)
            if best is None:
                return Answer(
                    text=f"I found no images for {args.described}, so I cannot answer.",
                    citations=[],
                    weak_evidence=True,
                )
            if best < settings.min_retrieve_score:
                weak = True
                notes.append(
                    f"The evidence is weak: no image matches {args.described} closely "
                    f"(best similarity {best:.2f})."
                )
    last_index = len(steps) - 1
    last = plan.steps[last_index]
    text, citations, last_weak = _describe(last.tool, last.parsed(), steps, settings)
    return Answer(
        text=" ".join([*notes, text]).strip(),
        citations=citations,
        weak_evidence=weak or last_weak,
    )


def _describe(
    tool: str, args: Any, steps: list[list[Output]], settings: AgentSettings
) -> tuple[str, list[Citation], bool]:
    outputs = steps[-1]
    retrieved = {out["image_id"]: out["score"] for out in steps[0] if "score" in out}
    if not outputs:
        return "There were no images to look at.", [], True
    errors = [out for out in outputs if "error" in out]
    good = [out for out in outputs if "error" not in out]
    lines: list[str] = []
    citations: list[Citation] = []
    weak = False
    match tool:
        case "retrieve":
            lines.append(f"I found {len(good)} images:")
            for rank, out in enumerate(good, start=1):
                caption = f' ("{out["caption"]}")' if out.get("caption") else ""
                region = out.get("region")
                # Found through a crop: say which, and cite its box (no grounding call).
                where = (
                    f", its {region['label']} at [{', '.join(f'{v:.0f}' for v in region['box'])}]"
                    if region
                    else ""
                )
                lines.append(
                    f"{rank}. [{out['image_id']}] similarity {out['score']:.2f}{where}{caption}"
                )
                citations.append(
                    Citation(
                        image_id=out["image_id"],
                        score=out["score"],
                        box=region["box"] if region else None,
                        label=region["label"] if region else None,
                    )
                )
        case "caption":
            for out in good:
                lines.append(f'[{out["image_id"]}] "{out["caption"]}"')
                citations.append(
                    Citation(image_id=out["image_id"], score=retrieved.get(out["image_id"]))
                )
        case "vqa":
            for out in good:
                score = out.get("answer_score")
                unsure = score is not None and score < settings.min_answer_score
                flag = f" (unsure: confidence {score:.2f})" if unsure else ""
                weak = weak or unsure
                lines.append(f"[{out['image_id']}] {out['answer']}{flag}")
                citations.append(Citation(image_id=out["image_id"], score=score))
        case "ground" | "detect":
            found_any = False
            for out in good:
                strong = [b for b in out["boxes"] if b["score"] >= settings.min_box_score]
                best: dict[str, Output] = {}
                for box in strong:  # best first: the first box of a label is its best
                    best.setdefault(box["label"], box)
                shown = best.values() if tool == "ground" else strong
                for box in shown:
                    found_any = True
                    where = ", ".join(f"{v:.0f}" for v in box["box"])
                    lines.append(
                        f"[{out['image_id']}] {box['label']} at [{where}] "
                        f"(score {box['score']:.2f})"
                    )
                    citations.append(
                        Citation(
                            image_id=out["image_id"],
                            box=box["box"],
                            score=box["score"],
                            label=box["label"],
                        )
                    )
            if not found_any:
                weak = True
                looked = ", ".join(f"[{out['image_id']}]" for out in good)
                lines.append(f"I could not find it with confidence in {looked}.")
        case "count":
            assert isinstance(args, CountArgs)
            counted = [out for out in good if "count" in out]
            for out in counted:
                lines.append(f"[{out['image_id']}] {out['count']} × {args.phrase}")
                citations.append(
                    Citation(image_id=out["image_id"], score=retrieved.get(out["image_id"]))
                )
            if args.rank != "none" and counted:
                pick = max if args.rank == "most" else min
                chosen = pick(counted, key=lambda out: out["count"])
                lines.insert(
                    0,
                    f"[{chosen['image_id']}] has the {args.rank} {args.phrase} "
                    f"({chosen['count']}).",
                )
            if counted and all(out["count"] == 0 for out in counted):
                weak = True
    for out in errors:
        lines.append(f"[{out['image_id']}] could not be processed: {out['error']}")
    if not good:
        weak = True
    return "\n".join(lines), citations, weak
