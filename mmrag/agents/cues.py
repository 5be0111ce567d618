"""Lexical cues: which words point at which tool, in English, French, German and Spanish.

They enter the intent classifier as extra features next to the n-grams, so the model learns
how much each cue counts; a question with an unseen wording but a known cue ("wie viele",
"localiza") still lands on the right tool. Matched on accent-folded lower-case text.
"""

from __future__ import annotations

import re

from mmrag.agents.intent import normalise

_CUES: dict[str, str] = {
    "count": r"how many|\bhw many|\bcount|number of|combien|wie viele|cuant[oa]s|"
    r"\bmost\b|fewest|\bleast\b|largest number|plus de|meisten|\bmas\b",
    "ground": r"\bwhere|\bwher\b|\bwhre\b|locate|point out|highlight|\bmark\b|box (?:around|on|of)|"
    r"\bou est|\bou se|wo ist|\bwo\b|donde|localiza|trouve|is there|are there|"
    r"y a-t-il|gibt es|\bhay\b|contain|lighthouse|\bshow me where",
    "detect": r"detect|detection|dettect|\bevery\b|all the|all objects|erkenne|\blist\b|"
    r"alle objekte|tous les objets|todos los objetos",
    "caption": r"describ|descrb|descib|description|caption|what'?s in|what is in|wat is in|"
    r"what (?:do|can) you see|what you see|summar|looking at|decri|beschreib|alt text|title|"
    r"going on|happening|on voit|zu sehen|que hay|what does this|what is this a",
    "vqa": r"colou?r|couleur|farbe|\bcolor\b|what kind|what breed|what sport|what season|"
    r"what time|doing|wearing|holding|eating|drinking|\bis the\b|\bare the\b|\bdoes\b|"
    r"\bwhich colou?r|tient|halt|written|weather|material|old|open or|indoors",
    "retrieve": r"show me|\bfind (?:me )?(?:a |the )?(?:photos?|pictures?|images?)|search|"
    r"look(?:ing)? for|photos? of|pictures? of|images? of|pics? of|any pics|do i have|"
    r"montre|cherche|\bzeig|\bsuche|muestra|busca|retrieve|pull up|images with|"
    r"which images show|everything with|photos do i have",
    "corpus": r"\bmy\b|collection|photos|pictures|images|pics|fotos|bildern?\b|imagenes|"
    r"\beach\b|which of|which one|among|\bother\b|\blike this\b",
    "own-image": r"\bthis\b|\bhere\b|attached|i sent|cette|dieses|diesem|esta|\bla foto\b|"
    r"\bthe image\b|\bthe picture\b|\bthe photo\b|l'image|\bl'homme\b",
}
_COMPILED = {name: re.compile(pattern) for name, pattern in _CUES.items()}


def cue_flags(question: str) -> list[str]:
    clean = normalise(question)
    return [f"cue-{name}" for name, pattern in _COMPILED.items() if pattern.search(clean)]


# With an image, "find photos like this one", "find other photos of this dog": a search of
# the collection. The corpus classifier has only three such questions to learn from, all
# of which it missed in cross-validation, so this is a rule and not a feature.
_MORE_LIKE = re.compile(
    r"\b(?:find|show|search|get|look for)\b.*\b(?:like (?:this|that)|similar|other|more)\b"
)


def asks_for_more_like(question: str) -> bool:
    return _MORE_LIKE.search(normalise(question)) is not None
