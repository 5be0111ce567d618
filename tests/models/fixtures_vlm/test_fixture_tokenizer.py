"""Fixture tokenizers: trained offline, whole words, exact round trips, stable ids."""

from __future__ import annotations

import random

import pytest
from transformers import PreTrainedTokenizerFast

from mmrag.models.fixtures.shapes import generate_world
from mmrag.models.fixtures.tokenizer import TokenizerSpec, build_tokenizer
from mmrag.models.fixtures.vlm_tasks import (
    TASKS,
    corpus,
    sample_example,
)
from mmrag.models.vlm.prompts import LLAVA_PLAIN_TEMPLATE

CORPUS = ["Is there a red circle?", "a blue square and a green triangle", "yes no"]
SPEC = TokenizerSpec(named_tokens={"image_token": "<image>"})


@pytest.fixture(scope="module")
def small() -> PreTrainedTokenizerFast:
    return build_tokenizer(CORPUS, SPEC)


def test_corpus_words_are_whole_tokens_and_decode_exactly(small: PreTrainedTokenizerFast) -> None:
    text = "a blue square and a green triangle"
    ids = small.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.split())
    assert small.decode(ids) == text


def test_special_tokens_and_wrapping(small: PreTrainedTokenizerFast) -> None:
    assert small.pad_token_id == 0
    assert getattr(small, "image_token", None) == "<image>"
    image_id = small.convert_tokens_to_ids("<image>")
    ids = small.encode("USER: <image><image>\nhi")
    assert ids[0] == small.bos_token_id
    assert ids.count(image_id) == 2
    assert small.eos_token_id not in ids
    both = build_tokenizer(CORPUS, TokenizerSpec(add_bos=False, add_eos=True))
    wrapped = both.encode("a red circle")
    assert wrapped[-1] == both.eos_token_id
    assert wrapped[0] != both.bos_token_id


def test_lower_case_and_unseen_words_still_encode(small: PreTrainedTokenizerFast) -> None:
    assert small.encode("Is There a RED circle?") == small.encode("is there a red circle?")
    unseen = small.encode(" zebra", add_special_tokens=False)
    assert small.decode(unseen) == " zebra"
    cased = build_tokenizer(CORPUS, TokenizerSpec(lowercase=False))
    assert cased.encode("Is") != cased.encode("is")


def test_same_corpus_same_vocabulary_in_any_order() -> None:
    first = build_tokenizer(CORPUS, SPEC).get_vocab()
    assert build_tokenizer(list(reversed(CORPUS)), SPEC).get_vocab() == first
    assert build_tokenizer([*CORPUS, "purple"], SPEC).get_vocab() != first


def test_the_vlm_language_is_whole_words() -> None:
    """Every prompt and answer the VLM fixture is taught encodes one token per word (or
    punctuation mark): short sequences, and nothing spelled out piece by piece."""
    tokenizer = build_tokenizer(corpus(), SPEC)
    pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer
    assert pre_tokenizer is not None
    rng = random.Random(0)
    texts: list[str] = []
    for scene in generate_world(40, seed=0):
        for task in TASKS:
            example = sample_example(rng, scene, task, present_fraction=0.5)
            texts.append(LLAVA_PLAIN_TEMPLATE.format(prompt=example.prompt).split("<image>")[1])
            texts.append(" " + example.answer)
    for text in texts:
        words = pre_tokenizer.pre_tokenize_str(text.lower())
        assert len(tokenizer.encode(text, add_special_tokens=False)) == len(words), text
