"""Lexical cues: which words point at which tool, in English, French, German, Spanish,
Italian, Portuguese and Dutch.

They enter the intent classifier as extra features next to the n-grams, so the model learns
how much each cue counts; a question with an unseen wording but a known cue ("wie viele",
"localiza") still lands on the right tool. Matched on accent-folded lower-case text.
"""

from __future__ import annotations

import re

from mmrag.agents.intent import normalise

# What a search asks for: "every photo", "all the pictures", "trouve-moi des photos" find
# photos, not every object in one.
_PHOTO_NOUN = (
    r"(?:photos?|pictures?|pics|images?|imgs?|shots?|fotos?|foto's|bilder|imagenes|immagini|"
    r"imagens|afbeeldingen|scenes?|uploads?)"
)
_CUES: dict[str, str] = {
    # "how many" as typed in a hurry: "hw many", "ow many", "how mny", "hw mny".
    "count": r"how many|\b(?:hw|ow|hwo|hoe|hpw|ho) m[a-z]{0,2}n[a-z]?y\b|\bhw m[a-z]*ny|"
    r"\bcount(?!er|r|y|ess|ies)|\bcnt\b|number of|combien|compte|wie viele|"
    r"\bzahl|cuant[oa]s|cuenta|quant[eio]|quant[oa]s|\bconta\b|\bconte\b|hoeveel|"
    r"\btel\b|\bmost\b|fewest|\bleast\b|minste|wenigsten|\bmenos\b|\bmeno\b|\bminder\b|"
    r"largest number|plus de|\bmoins de|meisten|"
    r"\bmas\b|\bpiu\b|\bmais\b|meeste",
    "ground": r"\bwhere|\bwher\b|\bwhre\b|locate|loacte|point (?:out|to)|highlight|\bmark\b|"
    r"\bbox(?:es)? (?:around|on|of|for|the|it|them)|^box\b|\bbox (?:each|every)|outline|"
    r"\bcircle the\b|pinpoint|\bspot\b|coordinates|position of|location of|bounding box|"
    r"\bou est|\bou se|wo ist|\bwehre (?:is|are)\b|\bwo\b|wo befindet|donde|localiza|"
    r"entoure|markier|"
    # "trouve le chat" points at a thing; "trouve-moi des photos de ..." searches.
    rf"\b(?:trouve|trova)\b(?! (?:tous|toutes|tutti|tutte)\b)(?![\w' -]{{0,12}}\b{_PHOTO_NOUN}\b)|"
    r"\bmarca\b|\bdov|\bonde\b|\bwaar\b|markeer|\bsegna\b|\blocali[sz]|"
    # "encadre le vélo", "umrande", "enmarca", "evidenzia", "destaque", "omcirkel": box it.
    r"encadr|umrand|umrahm|enmarc|recuadr|senal|evidenzi|cerchia|segnala|destaqu|destac|"
    r"circul|marque|aponte|omcirkel|omlijn|surligne|hervorheb|resalt|realc|situe|"
    r"is there (?:a|an|one)\b|are there|do you see|y a-t-il|gibt es|\bhay\b(?! alguien)|"
    r"c'e\b(?! qualcuno)|contain|"
    r"lighthouse|"
    r"\br there\b|^\W*(?:any|got any) [^\W\d_]+ (?:here|in (?:this|here))\b|"
    r"\bshow me where|\bposition\b|\bwhereabouts\b|"
    # "which part of the photo shows the door?" asks where.
    r"\b(?:which|what) part of|in welchem teil|dans quelle partie|en (?:que|cual) parte|"
    r"in quale parte|em que parte|in welk deel|"
    # "do my beach photos have a boat in them?", "check if the office pics have ...": is
    # one thing there.
    r"^\W*(?:do|does|did|check (?:if|whether)) .*\b(?:photos?|pictures?|pics|images?|shots|"
    r"scenes?|uploads?)\b"
    r".*\bha(?:ve|s) (?:a|an|any)\b|verify",
    "detect": rf"detect|detection|dettect|dtect|\bevery\b(?! {_PHOTO_NOUN})|"
    rf"all the(?! {_PHOTO_NOUN})|"
    r"all objects|\beverything\b(?! (?:from|with|about|of)\b)|"
    # "trova tutte le persone e tutte le biciclette", "trouve tous les", "finde alle":
    # every thing of a kind, unless what is found is photos.
    r"\b(?:find|trouve|trova|finde|encuentra|encontre|encontra|vind) (?:all|tous|toutes|"
    r"alle|todos|todas|tutti|tutte)\b(?! (?:(?:the|les|le|i|gli|os|as|los|las|de|die) )?"
    r"" + _PHOTO_NOUN + r")|"
    r"etiquet|etichett|beschrift|rotul|herken|"
    r"\blabel|\btag\b|annotate|all (?:the )?(?:items|things|people|objects)|erkenne|\blist\b|"
    r"alle objekte|tous les objets|todos los objetos|tutti gli oggetti|todos os objetos|"
    r"alle objecten|rileva|detecte|detecteer|repere",
    # Not "describing": "the photo where a man is describing a painting" is a photo to find.
    "caption": r"\btl;?dr\b|\bgist\b|describ(?!ing)|descrb|descib|dscrib|decrib|description|"
    r"descrption|caption|"
    r"what'?s in|what is in|wat is in|wht'?s in|what (?:do|can) you see|what you see|summar|"
    r"\b(?:i'?m|i am|am i|we'?re|we are|are we) looking at|decri|beschreib|beschrij[fv]|descriv|"
    r"descrev|alt text|title|overview|rundown|"
    r"depict|(?:this|the|overall|whole) scene\b|going on|happening|"
    r"se passe|passiert|\bist (?:hier )?los\b|pasando|\bpasa\b|sucede|succede|acontec|"
    r"\bse passa\b|sieht man|siehst du|\bsi vede\b|gebeurt|aan de hand|te zien|resume|resumen|"
    r"riassum|resuma|zusammenfass|\bque aparece|\bcosa appare|qu'apparait|was erscheint|"
    r"samenvat|on voit|zu sehen|que hay|que se ve|what does this|"
    r"what is this a|(?:this|the) (?:image|photo|picture|pic|shot) (?:show|about)|"
    # "what is this photo of?" asks; "the photo of the goat on the roof" names one.
    r"this (?:image|photo|picture|pic|shot) of\b|(?:image|photo|picture|pic|shot) (?:is )?of\W*$|"
    r"\bmontre|\bzeigt|muestra|\bmostra|\bwat staat|\bo que tem|cosa c'e|legende|"
    r"bildunterschrift|qu'est-ce qu'il y a|qu'y a-t-il|what is shown|what do we have|"
    r"was ist auf|what am i seeing|"
    r"explain (?:this|the) (?:image|photo|picture)|tell me about|"
    r"(?:photos?|pictures?|images?|pics?) (?:show|look like)\b",
    "vqa": r"colou?r|couleur|farbe|\bcolore|\bcor\b|kleur|what kind|what type|what breed|"
    r"what sport|what season|what time|doing|wearing|holding|eating|drinking|\bis the\b|"
    r"\bare the\b|\bdoes\b|\bis it\b|\bis this\b|\bwhich colou?r|\btient\b|\bhalt(?:en)?\b|"
    r"written|\bread\b|"
    r"\bsay\b|weather|material|old|open or|indoors|\bopen\b|\bclosed\b|\bempty\b|\bfull\b|"
    r"\bwhy\b|\bwho\b|"
    # "is anyone sleeping?" asks about someone, not for a thing to box.
    r"\bhay alguien|\bc'e qualcuno|\bha alguem|quelqu'un|\bjemand\b|\biemand\b|"
    r"\bwhich way|est-ce qu|\bestan\b|\bsta\b|"
    r"\bestao\b|\bis (?:de|het)\b|\bdi che\b|"
    # A question by inversion: "les rayons sont-ils vides ?", "sind die Regale voll?".
    r"\b[^\W_]+-(?:t-)?(?:ils|elles|il|elle)\b|^\W*(?:ist|sind|hat|haben|war|waren|zijn)\b|"
    r"¿\s*(?:esta|estan|es|son)\b|\b(?:are|were) they\b|\bis (?:she|he|anyone|anybody)\b|"
    # "is there snow on the roof?" asks about stuff, "is there a ladder?" for a thing to box.
    r"is there (?!(?:a|an|one)\b)|"
    # "tell me whether ...", in each language: a question asked of each image.
    r"tell me (?:if|whether|what|which)|dis-moi|sag mir|\bdime\b|vertel me|dimmi|diga-me|"
    r"\bob\b|"
    # article, noun, "is": "la puerta esta abierta", "il cane sta dormendo".
    r"\b(?:el|la|los|las|o|a|os|as|il|lo|le|der|die|das|de|het) [^\W\d_]+ "
    # Italian and Portuguese "e" is also "and": "tutte le persone e tutte le bici" lists.
    r"(?:esta|estan|es|son|sta|stanno|e(?! (?:tutt[eiao]|todas|todos)\b)|sono|est|sont|ist|sind|is|"
    r"zijn)\b",
    "retrieve": r"show me|\bfind (?:me )?(?:a |the |all (?:the |my )?|every )?(?:photos?|pictures?|"
    r"images?)|search|serach|"
    r"look(?:ing)? for|photos? of|pictures? of|images? of|pics? of|imgs? of|any pics|do i have|"
    r"do we have|montre|cherche|\bzeig|\bsuche|\bfinde\b|muestra|busca|encuentra|mostrami|"
    r"\bcerca\b|mostre|procur|\btrouve(?:-moi)? (?:des|les|mes|toutes les) (?:photos|images)|"
    r"\bzoek|laat me|retrieve|pull up|dig up|images with|"
    r"which images show|everything with|photos do i have|got any|"
    # "the shot of the deer in the snow", "that picture from the party": a photo named.
    r"^\W*(?:the|that|those|my) (?:photos?|pictures?|pics?|shots?|images?) (?:of|from|with)\b",
    "corpus": r"\bmy\b|collection|library|photos|pictures|images|pics|fotos|foto's|bildern?\b|"
    r"imagenes|immagini|imagens|afbeeldingen|\bfoto (?:del|della|do|da|van)\b|"
    r"\beach\b|which of|which one|among|\bother\b|\blike this\b|similar|result",
    "own-image": r"\bthis\b|\bhere\b|attached|i sent|cette|dieses|diesem|esta|\bla foto\b|"
    r"\bthe image\b|\bthe picture\b|\bthe photo\b|l'image|\bl'homme\b|questa|\bdeze\b|"
    r"\bnesta\b",
}
_COMPILED = {name: re.compile(pattern) for name, pattern in _CUES.items()}
# "the photo where everyone is smiling" describes a photo to find: that "where" asks for no
# place, so it is read as "with" before the cues are matched ("showing" would read as "the
# photo shows", a caption cue).
_RELATIVE_WHERE = re.compile(
    r"\b(photos?|pictures?|pics?|images?|shots?|ones?)"
    r"((?: (?!and\b|then\b|show\b|tell\b|me\b)[^\W\d_]+){0,4}) where\b"
    r"(?! (?:is|are|was|were|exactly)\b)"
)
# "where are my photos of the harbour?", "where's that picture of the cake?": the photos
# are what is asked for, not a place in them.
_WHERE_PHOTOS = re.compile(
    r"\bwhere(?:'s| is| are) ((?:my|the|that|those|these) (?:[^\W_]+ )?"
    r"(?:photos?|pictures?|pics?|images?|shots?))\b"
)


def cue_flags(question: str) -> list[str]:
    clean = _RELATIVE_WHERE.sub(r"\1\2 with", normalise(question))
    clean = _WHERE_PHOTOS.sub(r"find \1", clean)
    return [f"cue-{name}" for name, pattern in _COMPILED.items() if pattern.search(clean)]


# With an image, "find photos like this one", "more like this please", "got more of these?",
# "trouve des photos comme celle-ci": a search of the collection by that image. A rule and
# not a feature: the wordings share a few fixed phrases (like this, similar, other shots of,
# in seven languages) while the words around them are anything, and the classifiers would
# need many examples of each to learn what this one pattern says.
_MORE_LIKE = re.compile(
    r"\blike (?:this|that|these|the one)\b|\bresembl|"
    r"\b(?:find|show|get|search|any(?:thing)?) similar\b|^similar\b|"
    r"\bsimilar (?:to (?:this|that|the one|it)|ones?|images?|photos?|pictures?|pics|shots?)\b|"
    r"\bmore of (?:these|this)\b|"
    r"\bother (?:photos?|pictures?|pics|images?|shots?)\b|\bmore (?:photos?|pictures?|pics|"
    r"images?|shots?)\b|\bsame (?:place|scene|spot|object|one)\b|reverse image|"
    r"\bsearch by (?:this|the) (?:image|photo|picture)|\boriginal of this|"
    r"\bcomme (?:celle|celui|ca|cette)|\bahnlich|\bparecid|\bsimili\b|\bsemelhant|\bvergelijkbar|"
    r"\bsimilai?res?\b|\bgelijkend|\bsoortgelijk|"
    r"\bwie (?:dieses|diese|dieser|das hier|das da)\b|\bcomo (?:esta|este|essa|esse|isto|isso)\b|"
    r"\bcome (?:questa|questo)\b|\bzoals (?:deze|dit|die)\b|"
    r"\b(?:mehr|andere|weitere) (?:fotos|bilder)\b|"
    r"\b(?:plus de|d'autres|autres) (?:photos|images)\b|"
    r"\b(?:mas|otras) (?:fotos|imagenes)\b|\b(?:mais|outras) (?:fotos|imagens)\b|"
    r"\b(?:piu|altre) (?:foto|immagini)\b|\b(?:meer|andere) (?:foto's|fotos|afbeeldingen)\b"
)


def asks_for_more_like(question: str) -> bool:
    return _MORE_LIKE.search(normalise(question)) is not None
