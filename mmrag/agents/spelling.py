"""Misspelt tool words put right before the planner reads a question: "decsribe" ->
"describe", "serach" -> "search", "whr's" -> "where's".

Why a correction step and not only the classifier's character n-grams: a typo in a short
word breaks most of its 3-5-grams ("decsribe" shares one 4-gram with "describe"), so the
n-grams carry the tool only when the training set happens to hold that very typo; and the
cue words, the rules (negation, rank, follow-ups) and the argument extraction all match
words, which a typo defeats outright. Correcting the few words that decide the tool fixes
all of them at once, for misspellings nobody has written yet.

Only into a small vocabulary of tool and question words in the seven languages, and never
from a real word: a content word one edit from a tool word must stay ("court" is not
"count", "direction" is not "detection"). A word that is common in any of the seven
languages (wordfreq's Zipf frequency, 3 or more: once per million words) is a real word and
stays as written, and so do words under five letters, where one edit makes anything of
anything. Other words are put right at one edit ("whers", "serch"), two from eight letters
("desrcibe"). A vowel-less abbreviation ("whr", "dscrb", "srch") stands for the tool word
with its consonants.
"""

from __future__ import annotations

import re
from functools import cache

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from wordfreq import zipf_frequency

# Accent-folded, lower case: the words that decide a tool or a step, in the seven languages,
# by what they ask for (a misspelling between two words of one group is either of them).
_GROUPS = {
    "caption": "describe description descriptions caption captions decris decrire decrivez "
    "beschreibe beschreiben beschreib beschreibung describa describeme descripcion descrivi "
    "descrivere descrizione descreva descrever descricao beschrijf beschrijving",
    "ground": "locate location where highlight outline pinpoint coordinates position bounding "
    "localise entoure markiere localiza localizza localize markeer",
    "detect": "detect detection",
    "count": "count combien wieviele cuantos cuantas quanti quante quantos quantas hoeveel",
    "retrieve": "search similar collection cherche montre zeige suche find busca encuentra "
    "mostrami mostra mostre mostrar procure zoek",
    "image": "picture pictures photo photos image images imagen imagenes imagem imagens "
    "immagine immagini afbeelding afbeeldingen bild bilder foto fotos",
}
_GROUP_OF = {word: group for group, words in _GROUPS.items() for word in words.split()}
VOCABULARY = frozenset(_GROUP_OF)
# Real words a single edit from a vocabulary word that fall under the frequency bar below:
# "photos captioned 'sunset'" names a caption the photo has, not one to write.
_KEEP = frozenset({"captioned", "imaged"})
_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl")
# Zipf 3: once per million words. Typos of tool words fall below it ("serach" 1.5,
# "decribe" 1.1); real words near them are far above ("direction" 5.2, "counter" 4.6).
_REAL_WORD_ZIPF = 3.0
_VOWELS = re.compile(r"[aeiouy]")
_TOKEN = re.compile(r"[^\W\d_]+")


def _skeleton(word: str) -> str:
    return _VOWELS.sub("", word)


# A vowel-less abbreviation stands for the vocabulary word with that consonant skeleton,
# when the words with that skeleton all ask for one thing: "whr" -> "where", "dscrb" ->
# "describe".
_SKELETONS: dict[str, list[str]] = {}
for _word in _GROUP_OF:  # English first: "dscrb" -> "describe"
    _SKELETONS.setdefault(_skeleton(_word), []).append(_word)
_BY_SKELETON = {
    key: words[0]
    for key, words in _SKELETONS.items()
    if len({_GROUP_OF[word] for word in words}) == 1
}


@cache
def corrected_word(word: str) -> str:
    """The vocabulary word ``word`` misspells, or ``word`` itself."""
    if word in VOCABULARY or word in _KEEP or len(word) < 3:
        return word
    if not _VOWELS.search(word):
        return _BY_SKELETON.get(word, word)
    if len(word) < 5:
        return word
    limit = 2 if len(word) >= 8 else 1
    found = process.extract(
        word, VOCABULARY, scorer=DamerauLevenshtein.distance, score_cutoff=limit, limit=None
    )
    if not found:
        return word
    nearest = min(distance for _, distance, _ in found)
    tied = sorted(str(candidate) for candidate, distance, _ in found if distance == nearest)
    if len({_GROUP_OF[candidate] for candidate in tied}) > 1:
        return word  # as near two words that ask for different things: leave it
    best = tied[0]
    if _is_real_word(word):
        return word
    # The first letter is rarely the one mistyped, and keeps "defect" from "detect"-like
    # neighbours of other words.
    return best if best[0] == word[0] else word


def _is_real_word(word: str) -> bool:
    """Whether ``word`` is common in any of the seven languages. wordfreq's "small" lists
    hold exactly the words at Zipf 3 and above, and load in about 0.1 s for the seven (the
    "best" lists, with rarer words this check never needs, took 2 s)."""
    return any(
        zipf_frequency(word, lang, wordlist="small") >= _REAL_WORD_ZIPF for lang in _LANGUAGES
    )


def correct(text: str) -> str:
    """``text`` (already folded to lower case without accents) with its misspelt tool words
    put right."""
    return _TOKEN.sub(lambda match: corrected_word(match.group(0)), text)
