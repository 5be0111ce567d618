"""The CLIP tokenizer rebuilt offline: open_clip's ids, OWL's padding, and a clean round trip
through save_pretrained."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mmrag.models.fixtures.clip_tokenizer import END_TOKEN, START_TOKEN, clip_tokenizer
from mmrag.models.fixtures.grounding_data import world_queries

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

LENGTH = 16


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return clip_tokenizer(LENGTH)


def test_ids_are_open_clips(tokenizer: CLIPTokenizer) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer(context_length=LENGTH)
    texts = [query.text for query in world_queries()] + ["a zebra-striped xylophone, 42 times"]
    ours = tokenizer(texts, padding="max_length", truncation=True)["input_ids"]
    assert ours == reference(texts).tolist()


def test_queries_start_with_start_end_with_the_highest_id_and_pad_with_zero(
    tokenizer: CLIPTokenizer,
) -> None:
    ids = tokenizer(["the blue triangle"], padding="max_length")["input_ids"][0]
    start = tokenizer.convert_tokens_to_ids(START_TOKEN)
    end = tokenizer.convert_tokens_to_ids(END_TOKEN)
    assert (start, end) == (49406, 49407)
    words = ids.index(end)
    assert ids[0] == start
    assert words == 4
    # OWL pools a query at its highest id and takes a query starting with 0 for padding.
    assert max(ids) == end
    assert ids[words + 1 :] == [0] * (LENGTH - words - 1)


def test_saved_tokenizer_loads_back_with_the_generic_class(
    tokenizer: CLIPTokenizer, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "CLIPTokenizer"
    assert loaded.model_max_length == LENGTH
    assert loaded.pad_token_id == 0
    assert loaded("a red circle")["input_ids"] == tokenizer("a red circle")["input_ids"]
