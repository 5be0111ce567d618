"""Negated tools: "don't count anything, just tell me what the picture shows", "i don't need
a box", "find more like this one, don't describe them", "ne compte pas", "zähl nicht",
"sin buscar", "senza descrivere", "não procure", "niet tellen".

A negated tool word is still a tool word to the classifier's n-grams and to the cues, so
the negated part is cut from the question before anything reads it, and the tools it named
are returned so the planner can rule them out. Only a part that names a tool is cut: "photos
without people" and "is the door not open?" keep their words, they describe what to find
or ask.
"""

from __future__ import annotations

import re

from mmrag.agents.cues import cue_flags
from mmrag.agents.intent import normalise

# Words that start a negated part, in the seven languages. Post-verbal ones ("zähl nicht",
# "compte pas", "tel niet") take the word before them too.
_BEFORE = (
    r"don'?t|do not|does not|doesn'?t|dont|didn'?t|no need (?:to|for)|not (?!sure\b|certain\b)"
    r"|never|without|instead of|rather than|skip|no|"
    r"ne|n'|pas besoin de|sans|"
    r"kein(?:e|en|er)?|ohne|"
    r"sin|"
    r"non|senza|"
    r"nao|sem|"
    r"geen|zonder|niet|nicht|pas"
)
_AFTER = r"nicht|niet|pas|nada"
# Where a negated part ends: punctuation, or the word that turns to what is wanted.
_END = (
    r"[,;.!?]|\s(?:just|only|simply|instead|but|rather|please|juste|seulement|simplement|"
    r"plutot|mais|nur|einfach|sondern|bitte|sino|solo|solamente|simplemente|pero|soltanto|"
    r"semplicemente|ma|apenas|somente|alleen|gewoon|maar|and|et|und|y|e)\b|$"
)
_NEGATED = re.compile(
    rf"(?:^|\s)(?:(?:{_BEFORE})\b|[^\W_]+ (?:{_AFTER})\b)(?:(?!{_END}).)*",
    re.UNICODE,
)
# What a negated part may name besides the cue words: "i don't need a box", "no labels",
# and the stems of the verbs in their other forms ("no busques", "non cercare").
_EXTRA = {
    "ground": re.compile(
        r"\bbox(?:es)?\b|\bcoordinates\b|\bwhere\b|\blocal|\bmarkier|"
        r"\bmarkeer|\bentour|\boutlin|\bhighlight"
    ),
    "detect": re.compile(r"\blabels?\b|\bdetect|\brilev|\berkenn"),
    "caption": re.compile(r"\bcaptions?\b|\bdescri|\bdecri|\bbeschr|\blegend"),
    "count": re.compile(r"\bcount|\bcompt|\bzahl|\bcuent|\bcont(?:a|e|ar|are)\b|\btel(?:len)?\b"),
    # "don't tell me what it is, just outline the suitcase": no question is asked.
    "vqa": re.compile(
        r"\btell me (?:what|which|if|whether)\b|\b(?:dis|dites)-moi ce|\bsag mir\b|"
        r"\bdime\b|\bdimmi\b|\bdiga-me\b|\bvertel me\b|\bzeg me\b"
    ),
    "retrieve": re.compile(
        r"\bother (?:photos|pictures|images)\b|\bcollection\b|\blibrary\b|"
        r"\bsearch|\blook|\bbus[cq]|\bcerc|\bprocur|\bzoek|\bsuch|\bcherch"
    ),
}
_TOOL_CUES = {"cue-count": "count", "cue-ground": "ground", "cue-detect": "detect",
              "cue-caption": "caption", "cue-retrieve": "retrieve"}  # fmt: skip


def negated_tools(question: str) -> tuple[str, frozenset[str]]:
    """The question without its negated parts that name a tool, and those tools."""
    clean = normalise(question)
    tools: set[str] = set()
    kept = clean
    for match in _NEGATED.finditer(clean):
        part = match.group(0)
        named = {_TOOL_CUES[flag] for flag in cue_flags(part) if flag in _TOOL_CUES}
        named |= {tool for tool, pattern in _EXTRA.items() if pattern.search(part)}
        if named:
            tools |= named
            kept = kept.replace(part, " ", 1)
    kept = re.sub(r"\s+([,;])", r"\1", " ".join(kept.split())).strip(" ,;")
    if not tools or not kept:
        return question, frozenset()
    return kept, frozenset(tools)
