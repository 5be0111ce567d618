"""Argument extraction for the local planner: the object phrase, the search text, the
question to ask each image, the rank (most/fewest) and references to earlier results.

Patterns cover English well and the common French, German and Spanish forms; anything they
miss falls back to the question's content words, which still makes a usable search text
or grounding phrase.
"""

from __future__ import annotations

import re

from mmrag.agents.intent import normalise

_STOP_WORDS = (
    "a an the this that these those my our your his her its their some any all every each "
    "of in on at to for from with about over under by and or is are was were be been do "
    "does did has have had there here it they them i me you we he she what which who "
    "whom whose where when why how many much can could would will please pls tell show "
    "find search look give get list photo photos picture pictures pic pics image images "
    "imag foto fotos shot shots one ones see u r whats wheres s "
    "le la les un une des du de dans sur et est sont ou que qui quel quelle y t il "
    "der die das den dem ein eine einen und ist sind im auf vom von mit zeig mir wo "
    "el los las unos unas del en con es hay donde esta cette ce ces contient tiene welches "
    "welche cual"
)
# The routing set's misspellings of the question and command words above ("whre are the
# keys" must ground "keys", not "whre keys"). Only these: a fuzzy match would also eat
# content words one letter from a stop word ("car"/"can", "cat"/"at").
_TYPOS = "whre wher hw wat shwo fnd tel descibe dettect"
_STOP = frozenset(_STOP_WORDS.split() + _TYPOS.split())
_CUT = re.compile(
    r"\s(?:in|on|at|inside|within|from|of the (?:image|photo|picture)|and|then|here|"
    r"dans|sur|auf|im|en)\s.*$"
)
_OBJECT_AFTER = re.compile(
    r"(?:where(?: exactly)?(?: is| are|s|'s)?|where in the (?:picture|image|photo) is|"
    r"locate|find|point out|highlight|mark(?: the location of)?|box around|box|outline|"
    r"pinpoint|spot|circle|"
    r"bounding box on|draw a box around|is there(?: a| an| any)?|are there(?: any)?|"
    r"contain(?:s)?(?: a| an)?|ha(?:ve|s)(?: a| an)?|show(?:s)? (?:me )?where|how many|"
    r"count(?: how many)?|"
    r"number of|the most|the fewest|the least|largest number of|the box of|"
    r"ou est|trouve|wo ist|donde esta|localiza|combien de|wie viele|cuantas?|quant[ie]|"
    r"quant[oa]s|hoeveel|compte|cuenta|conta|conte|zahle|tel|"
    r"y a-t-il(?: un| une)?|gibt es(?: ein| eine)?|hay(?: una| un)?)\s+(?:the |a |an |le |la |"
    r"der |die |das |el |la )?(.+)"
)
_QUERY_AFTER = re.compile(
    r"(?:photos?|pictures?|pics|images?|shots|fotos?|bilder|imagenes|"
    r"show me|find(?: me)?|search(?: the collection)? for|look(?:ing)? for|look through|"
    r"about|with|containing|in my|in the|among the|for each|de|vom|von)\s+"
    r"(?:of |about |with |the |a |an |me |my |all |any |for )*(.+)"
)
_NOUNS = r"(?:photos?|pictures?|pics|images?|fotos?|bilder[n]?|imagenes|shots)"
# "the pictures of the harbour", "images about mountains": the scope comes after the noun.
_SCOPE_AFTER = re.compile(
    _NOUNS + r"\s+(?:of|about|with|from|showing|containing|du|de|des|vom|von|del|mit)\s+"
    r"(?:the |a |an |my |la |le |les |el |los |las |l')?([^,?!.]+)"
)
# "my beach photos", "the concert pictures": the scope comes before it.
_SCOPE_BEFORE = re.compile(r"([^\W_]+(?: [^\W_]+)?)\s+" + _NOUNS + r"\b")
# Where a question's clauses meet: "find dogs and tell me ...", "... then count ...".
# Dutch "en" only before what a second clause starts with: alone it is also "in" (es, fr).
_AND = (
    r"\s(?:and|then|et|und|y|e|en(?= (?:zeg|vertel|tel|beschrijf|geef|laat|markeer|wat|waar|"
    r"hoeveel|welke)\b))\s"
)
# A question mark with more after it ends a clause too: "which pic has the most balloons?
# describe that one".
_CLAUSE_END = r"\?(?=\s*[^\W_])"


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text)


def asked_clause_words(question: str) -> list[str]:
    """The words of the last clause when the question has several, else none."""
    parts = re.split(_AND + r"|[,:;]|" + _CLAUSE_END, normalise(question))
    return _words(parts[-1]) if len(parts) > 1 else []


def clauses(question: str) -> list[str]:
    """The question's clauses: "the two photos with the most cars, and what colour ..." ->
    ["the two photos with the most cars", "what colour ..."]."""
    # A dash between spaces ends a clause too: "the photo with the fewest clouds - what ...".
    parts = re.split(
        r"\s*,?" + _AND + r"|\s*[,;:]\s*|\s+[-\u2013\u2014]\s+|\s*" + _CLAUSE_END,
        normalise(question),
    )
    return [part.strip() for part in parts if part.strip()]


_TELL = (
    r"(?:(?:tell|show) me |say |list |dis-moi |sag mir |dime |dimmi |diga(?:-me)? |diz(?:-me)? |"
    r"zeg(?: me)? |vertel(?: me)? )?"
)
_WHICH_WORD = r"(?:which|what|lesquel(?:le)?s|quelles?|quels?|welche|cuales|quali|quais|welke)"
_WHICH = re.compile(
    r"^" + _TELL + _WHICH_WORD + r" (?:(?:ones?|of them|of these|images?|photos?|pictures?|"
    r"fotos?|foto's) )?\s*(?:(are|is|sont|est|estan|son|sono|estao|sao)|"
    r"(have|has|show|shows|contain|contains|ont|tienen|hanno|tem|tenham))\s+(.+?)[?.!]*$"
)
# German and Dutch put the verb last: "sag mir, welche leer sind", "zeg welke leeg zijn".
_WHICH_LAST = re.compile(r"^" + _TELL + r"(?:welche|welke) (.+?) (?:sind|ist|zijn|is)[?.!]*$")


def which_ones(question: str) -> str | None:
    """The yes/no question to ask each image for "... and tell me which ones are empty":
    "Is it empty?"; None when the last clause is no such question."""
    parts = clauses(question)
    if len(parts) < 2 or rank_of(parts[-1]) != "none":
        return None  # "which one has the most umbrellas" ranks: a count, not a yes/no
    last = _WHICH_LAST.match(parts[-1])
    if last is not None:
        return f"Is it {last.group(1)}?"[:300]
    match = _WHICH.match(parts[-1])
    if match is None:
        return None
    if match.group(1):
        return f"Is it {match.group(3)}?"[:300]
    return f"Is there {match.group(3)}?"[:300]


def content_words(text: str) -> str:
    kept = [word for word in _words(normalise(text)) if word not in _STOP]
    return " ".join(kept[-4:])


def _phrase(match: re.Match[str] | None) -> str:
    if match is None:
        return ""
    tail = _CUT.sub("", " " + match.group(1).strip(" ?!.,;:¿¡")).strip()
    tail = re.split(r"[?!.,;:]", tail)[0]
    words = [w for w in _words(tail) if w not in {"is", "are", "there", "do", "you", "see"}]
    while words and words[-1] in _STOP:
        words.pop()
    while words and words[0] in _STOP:
        words.pop(0)
    return " ".join(words[:5])


# "the image with the largest number of birds" -> "birds": after a rank, not after "find".
_AFTER_RANK = re.compile(
    r"\b(?:most|fewest|least|fewer|(?:largest|greatest|highest) number of|plus de|"
    r"by (?:the )?(?:number|count) of|"
    r"moins de|meisten|wenigsten|mas|menos|piu|meno|mais|meeste|minste)\s+(.+)"
)


def count_phrase(question: str) -> str:
    """What to count, in the singular: ``"which photo has the most people?"`` -> ``"person"``."""
    found = _phrase(_AFTER_RANK.search(normalise(question)))
    return singular(found or object_phrase(question))


def object_phrase(question: str) -> str:
    """What to ground or count: ``"where is the red car?"`` -> ``"red car"``."""
    clean = normalise(question)
    # The clause asked last first: "find photos like this and count the people" -> "people".
    asked = re.split(_AND, clean)[-1]
    found = _phrase(_OBJECT_AFTER.search(asked)) or _phrase(_OBJECT_AFTER.search(clean))
    return found or content_words(question) or clean[:100]


def _kept(text: str, limit: int = 6) -> str:
    clause = re.split(_AND, text)[0]
    words = [w for w in _words(clause) if w not in _STOP and w not in _RANK_WORDS]
    return " ".join(words[:limit])


_RANK_WORDS = {
    *("most", "fewest", "least", "largest", "number", "other", "like", "similar"),
    *("plus", "moins", "meisten", "wenigsten", "mas", "menos"),
}


def search_text(question: str) -> str:
    """What to retrieve by: ``"find photos of dogs and tell me ..."`` -> ``"dogs"``;
    ``"is there a bicycle in the images about the harbour?"`` -> ``"harbour"``."""
    clean = normalise(question)
    for pattern in (_SCOPE_AFTER, _SCOPE_BEFORE):
        for match in pattern.finditer(clean):
            found = _kept(match.group(1))
            if found:
                return found
    head = re.split(_AND + r"|[,?]", clean)[0]
    query = _QUERY_AFTER.search(head)
    found = _kept(query.group(1)) if query is not None else ""
    return found or _kept(head) or content_words(clean) or clean[:100]


_SUBJECT = r"the .+?|they|he|she|it|anyone"
_SCOPE_LEAD = re.compile(
    r"^(?:in|among|for|from) (?:each of )?(?:the |my |all )?(?:\w+ )?" + _NOUNS + r"\b[^,]*,\s*",
    re.I,
)
_SCOPE_TAIL = re.compile(
    r"\s(?:in|on|of) (?:each of |every one of |all )?(?:the |my )?(?:\w+ )?" + _NOUNS + r"\b.*$",
    re.I,
)


def per_image_question(question: str) -> str:
    """The question to ask each retrieved image: the part after "and", "each" made "the"."""
    clean = " ".join(question.split()).rstrip(" ?")
    parts = re.split(_AND + r"(?:tell? me |say |dis-moi |sag mir |dime )?", clean)
    asked = parts[-1] if len(parts) > 1 else clean
    # The scope picked the images; each one is asked without it: "in the pictures of cars,
    # what colour is each car" -> "what colour is the car".
    asked = _SCOPE_LEAD.sub("", asked)
    asked = _SCOPE_TAIL.sub("", asked) or asked
    asked = re.sub(r"\s(?:in|on|for) (?:each(?: one)?|them|all of them)$", "", asked)
    asked = re.sub(r"\beach\b", "the", asked)
    # An embedded question back in question order: "what colour the collar is" ->
    # "what colour is the collar".
    embedded = re.fullmatch(rf"((?:what|which)(?: \w+)?) ({_SUBJECT}) (is|are)( .+)?", asked, re.I)
    if embedded:
        asked = f"{embedded[1]} {embedded[3]} {embedded[2]}{embedded[4] or ''}"
    # "whether there are clouds" -> "are there clouds"
    yes_no = re.fullmatch(rf"(?:whether|if) (there|{_SUBJECT}) (is|are)( .+)?", asked, re.I)
    if yes_no:
        asked = f"{yes_no[2]} {yes_no[1]}{yes_no[3] or ''}"
    return (asked[:1].upper() + asked[1:] + "?") if asked else question


_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten un une deux trois quatre cinq ein eine "
    "einen zwei drei vier funf uno una dos tres cuatro cinco due tre quattro cinque um uma "
    "dois duas quatro een twee drie vijf"
)
# A bound on a count is a filter, not a ranking: "at least two people", "more than 3 cars",
# "au moins deux", "mehr als drei", "al menos dos", "più di 3", "pelo menos dois",
# "minstens twee".
_THRESHOLD = re.compile(
    r"\b(?:at least|at most|more than|fewer than|less than|over|under|no more than|exactly|"
    r"au moins|au plus|plus de|moins de|mindestens|hochstens|mehr als|weniger als|genau|"
    r"al menos|como minimo|mas de|menos de|almeno|piu di|meno di|pelo menos|no minimo|"
    r"mais de|minstens|ten minste|meer dan|minder dan)\s+"
    r"(?:\d+|" + "|".join(_NUMBER_WORDS.split()) + r")\b"
)
# The superlative that ranks images by a count, in the seven languages: "the most cars",
# "le plus de voitures", "die meisten Autos", "con más coches", "con più auto", "com mais
# carros", "de meeste auto's". "mas", "mais" and "piu" alone are also "but" or "more", so
# they rank only after "with", "that has" or an article.
_FEWEST = re.compile(
    r"\b(?:fewest|least|fewer|le moins de|la moins de|wenigsten|menos|meno|minste|minder|"
    r"menor (?:numero|cantidad)|minor numero)\b"
)
_MOST = re.compile(
    r"\b(?:most|(?:largest|greatest|highest|biggest) number|le plus de|le plus grand nombre|"
    r"meisten|meiste|(?:con|com|que|tiene|tem|ha|the|el|la|o|a|il) (?:mas|mais|piu)|"
    r"by (?:the )?(?:number|count) of|"
    r"mayor (?:numero|cantidad)|maior (?:numero|quantidade)|maggior numero|meeste|plus de)\b"
)


def without_thresholds(question: str) -> str:
    """The question with its count bounds taken out: what is left ranks or not."""
    return _THRESHOLD.sub(" ", normalise(question))


def rank_of(question: str) -> str:
    clean = without_thresholds(question)
    if _FEWEST.search(clean):
        return "fewest"
    if _MOST.search(clean):
        return "most"
    return "none"


# The rank and what it counts, with what leads to it: "with the most forklifts", "mit den
# meisten Personen", "qui a le plus de voitures". Cut, it leaves what is asked of the
# top image: "caption the picture with the most forklifts" -> "caption the picture".
_RANK_PHRASE = re.compile(
    r"\s*(?:\b(?:with|having|that has|which has|that have|where there are|containing|mit|"
    r"con|avec|qui a|ou il y a|met|com|que tiene|que tem|che ha|die|dat)\s+)?"
    r"(?:\b(?:the|den|die|el|la|los|las|le|il|i|o|a|os|as|de)\s+)?"
    r"\b(?:(?:largest|greatest|highest|biggest) number of|le plus grand nombre de|"
    r"most|fewest|least|meisten|wenigsten|meeste|minste|le plus de|le moins de|"
    r"mas|menos|piu|meno|mais|mayor numero de|maior numero de|maggior numero di)\b[^,;:?]*"
)


def without_rank(clause: str) -> str:
    """The clause without its ranking phrase."""
    return " ".join(_RANK_PHRASE.sub(" ", without_thresholds(clause)).split())


_IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child"}


def singular(phrase: str) -> str:
    """The phrase with its last word in the singular (English rules): detectors score a
    label like ``circle`` better than ``circles``, and counting wants one label per object."""
    words = phrase.split()
    if not words:
        return phrase
    last = words[-1]
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif re.search(r"(?:ch|sh|x|ss)es$", last):
        last = last[:-2]
    elif last.endswith("s") and not re.search(r"(?:ss|us|is)$", last) and len(last) > 3:
        last = last[:-1]
    return " ".join([*words[:-1], last])


_GENERIC = {
    *("object", "objet", "objekt", "objekte", "objeto", "everything", "thing", "all", "shape"),
    *("alle", "tous", "todos", "detected"),
}
_PLACE_CUT = re.compile(r"\s(?:in|on|at|inside|within|from|dans|sur|auf|im|en)\s.*$")


def detect_labels(question: str) -> list[str]:
    """Labels to detect: ``"detect cars, people and bikes"`` -> ``["car", "person", "bike"]``;
    nothing specific (``"detect all objects"``) -> ``["object"]``."""
    clean = normalise(question)
    # After the last verb: "find the street pictures and detect cars" -> "cars".
    verbs = r"detect|dettect|detecte|detecta|detection|deteccion|erkenne|find|mark|list"
    clean = re.sub(rf"^.*\b(?:{verbs})\b", "", clean)
    clean = _PLACE_CUT.sub("", " " + clean).strip()
    labels = []
    for part in re.split(r",|\band\b|\bor\b|\bet\b|\bund\b|\by\b", clean):
        # Generic words in any number: "objets" is as unspecific as "objet".
        words = [w for w in _words(part) if w not in _STOP and not {w, singular(w)} & _GENERIC]
        label = singular(" ".join(words))
        if label and label.split()[-1] not in _GENERIC:
            labels.append(label)
    if any("shape" in part for part in _words(clean)):
        labels += ["circle", "square", "triangle"]  # the kinds of the shapes world
    return list(dict.fromkeys(labels))[:8] or ["object"]
