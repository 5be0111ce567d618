"""What a question says about which images to search, besides its words: a counts filter
("photos with at least two people") and a source filter ("from the warehouse upload"),
as a :class:`~mmrag.retrieval.filters.SearchFilter` body; and how many ranked images it
wants ("the two photos with the most cars")."""

from __future__ import annotations

import re
from typing import Any

from mmrag.agents.arguments import singular
from mmrag.agents.intent import normalise
from mmrag.retrieval.annotations import count_key

_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "single": 1,
}  # fmt: skip
_NUMBER = r"(\d{1,2}|" + "|".join(_NUMBERS) + r")"
# "at least two people", "more than 3 cars", "at most one dog", "fewer than four chairs".
_BOUND = re.compile(
    r"\b(at least|more than|over|at most|fewer than|less than|no more than|exactly)\s+"
    + _NUMBER
    + r"\s+([a-z]+(?: [a-z]+)?)"
)
_SOURCES = (
    (re.compile(r"\bupload(?:s|ed)?\b"), "upload"),
    (re.compile(r"\b(?:from (?:the )?(?:web|internet)|urls?|links?|downloaded)\b"), "url"),
    (re.compile(r"\b(?:from (?:the )?(?:disk|folder|directory|server path)|paths?)\b"), "path"),
    (re.compile(r"\bsamples?\b"), "sample"),
)
_STOP_TAIL = {"in", "on", "at", "and", "from", "with", "of", "the", "or", "that", "which"}


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def question_filter(question: str) -> tuple[dict[str, Any] | None, str]:
    """The filter the question asks for (or None) and the question without the words that
    made it, so they are not searched for as well."""
    clean = normalise(question)
    found: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    for match in _BOUND.finditer(clean):
        how, number, things = match.group(1), _number(match.group(2)), match.group(3).split()
        while len(things) > 1 and things[-1] in _STOP_TAIL:
            things.pop()
        key = count_key(singular(" ".join(things)))
        bounds = {
            "at least": {"gte": number},
            "more than": {"gte": number + 1},
            "over": {"gte": number + 1},
            "at most": {"lte": number},
            "no more than": {"lte": number},
            "fewer than": {"lte": number - 1},
            "less than": {"lte": number - 1},
            "exactly": {"gte": number, "lte": number},
        }[how]
        if bounds.get("lte", 0) >= 0:
            counts[key] = bounds
            clean = clean.replace(match.group(0), " ".join(things))
    if counts:
        found["counts"] = counts
    for pattern, source in _SOURCES:
        if pattern.search(clean):
            found["source"] = source
            clean = pattern.sub(" ", clean)
            break
    return (found or None), " ".join(clean.split())


_WORDS = r"(?:[^\W\d_][\w']* ){0,3}"
# "in the warehouse photos", "of my dock pictures", "from the beach upload", "dans les photos
# de l'entrepôt", "in den Lagerfotos", "en las fotos de la playa", "nelle foto della spiaggia",
# "nas fotos da praia", "in de foto's van het magazijn": the images a question is about.
_COLLECTION = re.compile(
    r"\b(?:(?:in|of|from|among|across|on|for) (?:all |each of |every one of )?"
    r"(?:the|my|our|these|those) " + _WORDS + r"(?:photos|pictures|pics|images|shots|uploads?)"
    r"|(?:dans|sur|parmi|pour) (?:les|mes|nos|ces) (?:photos|images)(?: (?:de|du|des|d')"
    r" ?(?:la |le |l')?[\w']+)?"
    r"|(?:in|auf|bei|unter|aus) (?:den|meinen|unseren|diesen) [\w]*(?:fotos|bildern|aufnahmen)"
    r"(?: (?:vom|von der|von|aus dem) [\w]+)?"
    r"|(?:en|entre) (?:las|mis|nuestras|estas) (?:fotos|imagenes)(?: (?:de|del) (?:la |el )?\w+)?"
    r"|(?:nelle|tra le|fra le|sulle|per le) (?:mie )?(?:foto|immagini)"
    r"(?: (?:di|del|della|dello|dei|delle) \w+)?"
    r"|(?:nas|entre as|para as) (?:minhas )?(?:fotos|imagens)(?: (?:de|do|da|dos|das) \w+)?"
    r"|(?:in|tussen|op) (?:de|mijn|onze|deze) (?:foto's|fotos|afbeeldingen)"
    r"(?: van (?:het |de )?\w+)?)\b"
)


def collection_scope(question: str) -> str | None:
    """What the question asks once the images it is about are named: "dans les photos de
    l'entrepôt, les rayons sont-ils vides ?" -> "les rayons sont-ils vides ?"; None when it
    names no images of the collection, or nothing besides."""
    clean = normalise(question)
    match = _COLLECTION.search(clean)
    if match is None:
        return None
    rest = " ".join((clean[: match.start()] + " " + clean[match.end() :]).split()).strip(" ,;:")
    return rest or None


_TOP = re.compile(
    r"\b(?:the |top )?" + _NUMBER + r" (?:\w+ )?(?:photos|images|pictures|pics|ones|shots)\b"
)


def top_wanted(question: str) -> int | None:
    """How many ranked images the question wants: "the two photos with the most cars" -> 2."""
    match = _TOP.search(normalise(question))
    if match is None:
        return None
    wanted = _number(match.group(1))
    return wanted if 1 <= wanted <= 50 else None
