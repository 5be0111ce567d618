"""The adaptive agent's answer: sentences a person reads once, each citing its image (and
box), over every step that found something, not only the last.

"The blue triangle is in 4 images; the clearest is [id] at [x1, y1, x2, y2]." Weak evidence
is still said, and the structured citations are those of the first generation (image, box,
score, label). Captions and answers are quoted as data, never followed.
"""

from __future__ import annotations

from typing import Any

from mmrag.agents.answer import Answer, Citation, stop_notes
from mmrag.agents.results import kept_outputs
from mmrag.agents.tools import (
    CaptionArgs,
    CountArgs,
    DetectArgs,
    GroundArgs,
    Plan,
    RetrieveArgs,
    StartJobArgs,
    VqaArgs,
)
from mmrag.config import AgentSettings

Output = dict[str, Any]


def where(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


_PLURALS = {"person": "people", "man": "men", "woman": "women", "child": "children"}


def plural(phrase: str, count: int = 2) -> str:
    """``"triangle"`` -> ``"triangles"`` (English rules, on the last word)."""
    words = phrase.split()
    if count == 1 or not words:
        return phrase
    last = words[-1]
    if last in _PLURALS:
        last = _PLURALS[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join([*words[:-1], last])


def _ids(outputs: list[Output]) -> str:
    names = [f"[{out['image_id']}]" for out in outputs]
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


class _Writer:
    def __init__(self, settings: AgentSettings, retrieved: dict[str, float]) -> None:
        self.settings = settings
        self.retrieved = retrieved  # image id -> search similarity, for citations' scores
        self.lines: list[str] = []
        self.citations: list[Citation] = []
        self.weak = False

    def cite(self, image_id: str, **found: Any) -> None:
        if "score" not in found:
            found["score"] = self.retrieved.get(image_id)
        self.citations.append(Citation(image_id=image_id, **found))

    def strong(self, out: Output) -> list[Output]:
        return [b for b in out.get("boxes", []) if b["score"] >= self.settings.min_box_score]

    def retrieve(self, args: RetrieveArgs, outputs: list[Output]) -> None:
        if not outputs:
            self.lines.append(f"I found no images for {args.described}.")
            self.weak = True
            return
        best = outputs[0]
        caption = f', described as "{best["caption"]}"' if best.get("caption") else ""
        self.lines.append(
            f"I found {len(outputs)} images for {args.described}; the closest is "
            f"[{best['image_id']}] (similarity {best['score']:.2f}){caption}."
        )
        self.cite(best["image_id"], score=best["score"])
        if len(outputs) > 1:
            self.lines.append(f"The others, in order, are {_ids(outputs[1:])}.")
            for out in outputs[1:]:
                self.cite(out["image_id"], score=out["score"])

    def caption(self, outputs: list[Output]) -> None:
        for out in outputs:
            self.lines.append(f'[{out["image_id"]}] shows "{out["caption"]}".')
            self.cite(out["image_id"])

    def vqa(self, args: VqaArgs, outputs: list[Output], kept: list[Output]) -> None:
        if args.keep is not None:
            if kept:
                self.lines.append(
                    f"{len(kept)} of the {len(outputs)} images answer {args.keep!r} to "
                    f'"{args.question}": {_ids(kept)}.'
                )
            else:
                self.weak = True
                self.lines.append(
                    f"None of the {len(outputs)} images answers {args.keep!r} to "
                    f'"{args.question}" ({_ids(outputs)} were asked).'
                )
            for out in kept:
                self.cite(out["image_id"], score=out.get("answer_score"))
            return
        groups: dict[str, list[Output]] = {}
        for out in outputs:
            score = out.get("answer_score")
            if score is not None and score < self.settings.min_answer_score:
                self.weak = True
                self.lines.append(
                    f'Asked "{args.question}", [{out["image_id"]}] answers "{out["answer"]}", '
                    f"but I am unsure (confidence {score:.2f})."
                )
            else:
                groups.setdefault(str(out["answer"]), []).append(out)
            self.cite(out["image_id"], score=score)
        if groups:
            parts = [f'"{answer}" for {_ids(outs)}' for answer, outs in groups.items()]
            self.lines.append(f'The answer to "{args.question}" is ' + "; ".join(parts) + ".")

    def ground(self, phrases: list[str], outputs: list[Output]) -> None:
        for phrase in phrases:
            found: list[tuple[Output, Output]] = []  # (output, its best box of the phrase)
            for out in outputs:
                boxes = [b for b in self.strong(out) if b["label"] == phrase]
                if boxes:
                    found.append((out, boxes[0]))
            found.sort(key=lambda pair: -pair[1]["score"])
            if not found:
                self.weak = True
                self.lines.append(
                    f"I could not find the {phrase} with confidence in {_ids(outputs)}."
                )
                continue
            (first, box), others = found[0], found[1:]
            if len(found) == 1:
                self.lines.append(
                    f"The {phrase} is in [{first['image_id']}] at {where(box['box'])} "
                    f"(score {box['score']:.2f})."
                )
            else:
                self.lines.append(
                    f"The {phrase} is in {len(found)} images; the clearest is "
                    f"[{first['image_id']}] at {where(box['box'])} (score {box['score']:.2f})."
                )
            self.cite(first["image_id"], box=box["box"], score=box["score"], label=phrase)
            for out, other in others:
                self.lines.append(
                    f"It is also in [{out['image_id']}] at {where(other['box'])} "
                    f"(score {other['score']:.2f})."
                )
                self.cite(out["image_id"], box=other["box"], score=other["score"], label=phrase)

    def detect(self, outputs: list[Output]) -> None:
        found_any = False
        for out in outputs:
            boxes = self.strong(out)
            if not boxes:
                continue
            found_any = True
            parts = [f"a {b['label']} at {where(b['box'])}" for b in boxes]
            self.lines.append(f"In [{out['image_id']}] I detected {', '.join(parts)}.")
            for b in boxes:
                self.cite(out["image_id"], box=b["box"], score=b["score"], label=b["label"])
        if not found_any:
            self.weak = True
            self.lines.append(f"I detected nothing with confidence in {_ids(outputs)}.")

    def job(self, outputs: list[Output]) -> None:
        for out in outputs:
            images = _ids([{"image_id": i} for i in out["image_ids"]])
            if out.get("started"):
                self.lines.append(
                    f"I started job {out['job_id']} to {out['task']} {out['images']} images: "
                    f"{images}."
                )
            elif "problem" in out:
                self.lines.append(f"I could not start the {out['task']} job: {out['problem']}.")
            else:
                self.lines.append(f"I did not start the {out['task']} job, as you asked.")
            for image_id in out["image_ids"]:
                self.cite(image_id)

    def count(self, args: CountArgs, outputs: list[Output], kept: list[Output]) -> None:
        counted = [out for out in outputs if "count" in out]
        if not counted:
            return
        if all(out["count"] == 0 for out in counted):
            self.weak = True
            self.lines.append(f"I counted no {plural(args.phrase)} in {_ids(counted)}.")
            for out in counted:
                self.cite(out["image_id"])
            return
        named: list[Output] = []
        if args.rank != "none":
            first = kept[0]
            named = kept[: args.top or 1]
            self.lines.append(
                f"[{first['image_id']}] has the {args.rank} "
                f"{plural(args.phrase)}: {first['count']}."
            )
            if len(named) > 1:
                self.lines.append(f"The {len(named)} I kept are {_ids(named)}.")
        by_count: dict[int, list[Output]] = {}
        for out in counted:
            if out not in named[:1]:
                by_count.setdefault(out["count"], []).append(out)
        parts = [
            f"{count} {plural(args.phrase, count)} in {_ids(outs)}"
            for count, outs in sorted(by_count.items(), reverse=True)
        ]
        if parts:
            lead = "The others have " if named else "There are "
            self.lines.append(lead + "; ".join(parts) + ".")
        for out in counted:
            self.cite(out["image_id"])


def compose_sentences(
    plan: Plan,
    steps: list[list[Output]],
    settings: AgentSettings,
    stopped: str | None = None,
) -> Answer:
    """Sentences over every step that ran: a search is told only when it is the last step
    or found little; each later step says what it found, in order."""
    notes = stop_notes(plan, steps, stopped)
    weak = bool(notes)
    if not steps:
        return Answer(text=" ".join(notes) or "Nothing was run.", citations=[], weak_evidence=True)
    retrieved: dict[str, float] = {}
    writer = _Writer(settings, retrieved)
    last = len(steps) - 1
    for index, (step, outputs) in enumerate(zip(plan.steps, steps, strict=False)):
        args = step.parsed()
        good = [out for out in outputs if "error" not in out]
        if isinstance(args, RetrieveArgs):
            retrieved.update({out["image_id"]: out["score"] for out in good})
            best = max((out["score"] for out in good), default=None)
            later_search = any(s.tool == "retrieve" for s in plan.steps[index + 1 : last + 1])
            if later_search:
                # Searched again: the later search is the one that counts; this one is said.
                found = "no images" if best is None else "only weak matches"
                notes.append(f"The search for {args.described} found {found}, so I searched again.")
                continue
            if best is None and index < last:
                writer.lines.append(f"I found no images for {args.described}, so I cannot answer.")
                weak = True
                break
            if best is not None and best < settings.min_retrieve_score:
                weak = True
                notes.append(
                    f"The evidence is weak: no image matches {args.described} closely "
                    f"(best similarity {best:.2f})."
                )
            if index == last:
                writer.retrieve(args, good)
            continue
        if not good and not outputs:
            writer.lines.append("There were no images to look at.")
            weak = True
        kept = kept_outputs(step, outputs)
        match args:
            case CaptionArgs():
                writer.caption(good)
            case VqaArgs():
                writer.vqa(args, good, kept)
            case GroundArgs():
                if good:
                    writer.ground(args.phrases, good)
            case DetectArgs():
                if good:
                    writer.detect(good)
            case CountArgs():
                writer.count(args, good, kept)
            case StartJobArgs():
                writer.job(good)
        for out in outputs:
            if "error" in out:
                writer.lines.append(f"[{out['image_id']}] could not be processed: {out['error']}.")
        if outputs and not good:
            weak = True
    return Answer(
        text=" ".join([*notes, *writer.lines]).strip(),
        citations=writer.citations,
        weak_evidence=weak or writer.weak,
    )
