"""What the grounding, detection and Florence-2 / Kosmos-2 adapters check of what callers ask:
phrase lists and label vocabularies. Loading lives in :mod:`mmrag.models.transformers_base`."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from mmrag.errors import InvalidInput


def phrase_lists(
    images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
) -> list[list[str]]:
    """Each image's phrases, checked: one list per image, no blank phrase. A phrase asked twice
    is answered once; phrases keep the caller's exact spelling, which becomes their label."""
    if isinstance(phrases, str) or any(isinstance(group, str) for group in phrases):
        raise InvalidInput("ground takes a list of phrases for each image")
    if len(images) != len(phrases):
        raise InvalidInput(f"{len(images)} images but {len(phrases)} lists of phrases")
    return [unique_texts(group, "phrase") for group in phrases]


def unique_texts(texts: Sequence[str], kind: str) -> list[str]:
    """Texts in order, duplicates dropped; a blank one is refused."""
    if isinstance(texts, str):
        raise InvalidInput(f"expected a list of {kind}s, not a string")
    if any(not text.strip() for text in texts):
        raise InvalidInput(f"cannot look for an empty {kind}")
    return list(dict.fromkeys(texts))


def clean_text(text: str) -> str:
    """A caller's phrase as a model reads it: whitespace runs collapsed, ends trimmed."""
    return " ".join(text.split())
