"""References to an earlier turn's results: "and the second one?", "what about number 3",
"is the door open in result 2?", "und beim dritten?", "e la seconda?", "et la 4e",
"same for the last one", in English, French, German, Spanish, Italian, Portuguese and Dutch.

A word is a reference by where it stands, not by being an ordinal: "the second one", "the
third", "result 2", "beim dritten" refer to results; "the second shelf" and "last summer's
photos" do not, since a thing that is no result follows the ordinal.
"""

from __future__ import annotations

import re

from mmrag.agents.intent import normalise


def _forms(stems: str, endings: str) -> dict[str, str]:
    return {stem + ending: stem for stem in stems.split() for ending in endings.split(",")}


def _numbered(*lines: str) -> dict[str, int]:
    """Each word of the n-th line (space-separated) means n."""
    return {word: n for n, line in enumerate(lines, start=1) for word in line.split()}


_RANKS = _numbered(
    "first premier premiere primero primera primer primo prima primeiro primeira eerste",
    "second deuxieme seconde segundo segunda secondo seconda tweede",
    "third troisieme tercero tercera tercer terzo terza terceiro terceira derde",
    "fourth quatrieme cuarto cuarta quarto quarta vierde",
    "fifth cinquieme quinto quinta vijfde",
)
# Cardinals, which refer after a result noun: "result number two", "nummer drei".
_NUMBER_WORDS = _numbered(
    # Not "un", "una", "um", "een": also "a", and "la photo un chat" refers to nothing.
    "one eins uno",
    "two deux zwei dos due dois duas twee",
    "three trois drei tres tre drie",
    "four quatre vier cuatro quattro quatro",
    "five cinq funf cinco cinque vijf",
)
# German ordinals take an ending by case and gender: "das zweite", "beim dritten".
for _rank, _stem in enumerate(("erst", "zweit", "dritt", "viert", "funft"), start=1):
    _RANKS.update(dict.fromkeys(_forms(_stem, "e,en,es,er,em"), _rank))
_LAST = frozenset(
    {"last", "final", "dernier", "derniere", "ultimo", "ultima", "laatste",
     *_forms("letzt", "e,en,es,er,em")}
)  # fmt: skip
# "2nd", "3rd", "4e", "2eme", "3o", "4a" (4º and 4ª fold to these), "3de", "3te", "2."
_NUMERIC = re.compile(r"^#?([1-9])(?:st|nd|rd|th|e|eme|er|ere|re|o|a|de|ste|te)?$")
# Nouns a bare number after them refers by: "result 2", "number 3", "photo 4", "nr 3".
_NOUN_WORDS = (
    "result results hit hits match photo photos image images picture pictures pic pics shot "
    "number no nr num numero nummer n resultat resultats ergebnis treffer bild bilder foto "
    "fotos imagen imagenes resultado resultados immagine immagini risultato imagem imagens "
    "afbeelding resultaat one ones item"
)
_RESULT_NOUNS = frozenset(_NOUN_WORDS.split())
# What may follow a reference: nothing, a result noun, or a word that ends the phrase.
_ENDING_WORDS = (
    "please pls too then again also now as in on of for from there here maintenant puis "
    "ensuite alors jetzt nun dann ahora luego ora poi agora depois nu dan"
)
_AFTER = _RESULT_NOUNS | frozenset(_ENDING_WORDS.split())
_DETERMINER_WORDS = (
    "the that this your la le l das der den dem die des beim im vom zum el lo los al del il "
    "nel nella dalla alla o a no na do da ao de het"
)
_DETERMINERS = frozenset(_DETERMINER_WORDS.split())
_TOP = re.compile(r"\btop (?:result|one|hit|match|photo|image|picture|pic)\b")
# Apostrophes split: "l'ultima" is "l" and "ultima". Punctuation is kept as a token: it ends
# a reference ("y en la tercera, ¿cuántas personas hay?").
_TOKENS = re.compile(r"#?[^\W_]+|[?!.,;:¿¡]")
_PUNCTUATION = frozenset("?!.,;:¿¡")
_SUFFIXES = "st|nd|rd|th|e|eme|er|ere|re|o|a|de|ste|te"
_MAX_WORDS = 14


def _tokens(question: str) -> list[str]:
    return _TOKENS.findall(normalise(question))


def _rank_at(tokens: list[str], index: int) -> int | None:
    """The rank the token at ``index`` refers to, -1 for the last, None when it is none."""
    token = tokens[index]
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    before = tokens[index - 1] if index > 0 else None
    if token.isdigit() or token in _NUMBER_WORDS:
        # A bare number refers only after a result noun: "result 2", "number three".
        number = int(token) if token.isdigit() else _NUMBER_WORDS[token]
        return number if before in _RESULT_NOUNS and 1 <= number <= 9 else None
    numeric = _NUMERIC.match(token)  # "2nd", "4e", "#3"
    rank = int(numeric.group(1)) if numeric else _RANKS.get(token)
    if rank is None and token in _LAST:
        rank = -1
    if rank is None or (after is not None and after not in _AFTER | _PUNCTUATION):
        return None
    # An ordinal refers after an article: "the first", "beim dritten", "e la seconda";
    # "weather first" says when, not which.
    return rank if before in _DETERMINERS or token.startswith("#") else None


def ordinal_reference(question: str) -> int | None:
    """The rank a follow-up refers to (``"and the second one?"`` -> 2), -1 for "last"."""
    tokens = _tokens(question)
    if sum(token not in _PUNCTUATION for token in tokens) > _MAX_WORDS:
        return None
    if _TOP.search(normalise(question)):
        return 1
    for index in range(len(tokens)):
        rank = _rank_at(tokens, index)
        if rank is not None:
            return rank
    return None


# Words that say nothing new next to a reference: "same for the last one", "what about
# number 3", "und beim dritten?", "e la seconda?", "ok, now the 4th".
_FILLER_WORDS = (
    "and what about how same thing question ok okay now then again too also please pls just the a "
    "hmm hm um uh ah oh well so right cool thanks great nice alright yes yeah next "
    "maintenant puis ensuite alors bon jetzt nun dann ahora luego pues bueno ora poi allora "
    "agora depois entao nu dan oke goed "
    "for with in on of to do it that one ones is are "
    "et la le les l pour pareil meme chose question avec dans sur de du quoi "
    "und das die der den dem beim bei im mit fur dasselbe gleiche selbe frage was ist "
    "y el lo los las con en del al mismo misma igual pregunta por que "
    "e il nel nella della per stesso stessa cosa domanda "
    "o a os as no na do da com mesmo mesma pergunta coisa para pra por s "
    "en de het van bij voor met zelfde hetzelfde vraag wat"
)
_FILLER = frozenset(_FILLER_WORDS.split())


def is_bare_reference(question: str) -> bool:
    """``"and the second one?"`` refers and asks nothing new; ``"what is the second one
    doing?"`` asks a question of its own about it."""
    tokens = _tokens(question)
    for index, token in enumerate(tokens):
        if token in _FILLER or token in _RESULT_NOUNS or token in _PUNCTUATION:
            continue
        if _rank_at(tokens, index) is not None or token == "top":
            continue
        return False
    return True


_ARTICLE = r"(?:the|la|le|l'|das|der|den|dem|el|il|o|a|de|het)"
_ORDINAL_WORD = "|".join(sorted({*_RANKS, *_LAST}, key=len, reverse=True))
_NOUN = "|".join(sorted(_RESULT_NOUNS, key=len, reverse=True))
_ORDINAL = rf"(?:{_ORDINAL_WORD}|top|[1-9](?:{_SUFFIXES}))"
_ENDS = rf"(?=\s*(?:[?.!,;]|$|(?:{'|'.join(_ENDING_WORDS.split())})\b))"
# "the second one", "the first image", "the third" (at the end), "result 2", "#3".
_REFERENCE = re.compile(
    rf"(?<!\w)(?:{_ARTICLE} )?(?:{_ORDINAL} (?:{_NOUN})(?!\w)|{_ORDINAL}{_ENDS}"
    rf"|(?:{_NOUN})\.? ?#?[1-9](?!\w)|#[1-9](?!\w))",
    re.IGNORECASE,
)


def without_reference(question: str) -> str:
    """The question with its reference made "it": ``"what is the second one doing?"`` ->
    ``"what is it doing?"``, ``"is the door open in result 2?"`` -> ``"is the door open in
    it?"``, so each image is asked about itself."""
    return _REFERENCE.sub("it", " ".join(question.split()))
