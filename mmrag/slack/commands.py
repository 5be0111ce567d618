"""``/mmrag`` (and a mention's text) parsed into one typed command; nothing here talks to Slack."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# The channel's last N images an annotate takes when no file comes with it, and its bound:
# more belongs in a bulk job started from the API with a folder or an archive.
DEFAULT_LAST = 20
MAX_LAST = 200
MAX_LABELS = 64


@dataclass(frozen=True)
class Help:
    problem: str | None = None  # why the help is shown, when the user asked something else


@dataclass(frozen=True)
class Search:
    text: str


@dataclass(frozen=True)
class Ask:
    question: str


@dataclass(frozen=True)
class Annotate:
    last: int = DEFAULT_LAST
    caption: bool = False
    detect: tuple[str, ...] = ()


@dataclass(frozen=True)
class Status:
    job_id: str


Command = Help | Search | Ask | Annotate | Status

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def parse(text: str) -> Command:
    """The command in ``/mmrag <text>``; anything unknown or malformed is ``Help`` with why."""
    verb, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    match verb.lower():
        case "" | "help":
            return Help()
        case "search" | "find":
            return Search(rest) if rest else Help("`search` needs some text to look for")
        case "ask":
            return Ask(rest) if rest else Help("`ask` needs a question")
        case "status":
            if _JOB_ID.fullmatch(rest):
                return Status(rest)
            return Help("`status` needs a job id (32 hex digits)")
        case "annotate":
            return _annotate(rest)
    return Help(f"unknown command `{verb[:40]}`")


def _annotate(rest: str) -> Command:
    try:
        words = shlex.split(rest)
    except ValueError as error:
        return Help(f"`annotate`: {error}")
    last, caption = DEFAULT_LAST, False
    detect: tuple[str, ...] = ()
    position = 0
    while position < len(words):
        word = words[position]
        if word == "--caption":
            caption = True
        elif word in ("--detect", "--last") and position + 1 < len(words):
            position += 1
            value = words[position]
            if word == "--detect":
                detect = tuple(label.strip() for label in value.split(",") if label.strip())
            elif value.isdigit() and 1 <= int(value) <= MAX_LAST:
                last = int(value)
            else:
                return Help(f"`annotate --last` takes 1 to {MAX_LAST}")
        elif word.isdigit() and 1 <= int(word) <= MAX_LAST:
            last = int(word)
        else:
            return Help(f"`annotate` does not know `{word[:40]}`")
        position += 1
    if not caption and not detect:
        return Help("`annotate` needs `--caption`, `--detect a,b` or both")
    if len(detect) > MAX_LABELS:
        return Help(f"`annotate --detect` takes at most {MAX_LABELS} labels")
    return Annotate(last, caption, detect)
