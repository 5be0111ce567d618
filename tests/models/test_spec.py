"""Spec strings: ``scheme:name[@revision]``."""

from __future__ import annotations

import pytest

from mmrag.errors import InvalidInput, UnknownModel
from mmrag.models.spec import ModelSpec, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "open_clip:ViT-B-32@laion2b_s34b_b79k",
            ModelSpec("open_clip", "ViT-B-32", "laion2b_s34b_b79k"),
        ),
        ("open_clip:ViT-B-32", ModelSpec("open_clip", "ViT-B-32", None)),
        (
            "hf:Qwen/Qwen2.5-VL-3B-Instruct@a1b2c3",
            ModelSpec("hf", "Qwen/Qwen2.5-VL-3B-Instruct", "a1b2c3"),
        ),
        (
            "hf:IDEA-Research/grounding-dino-tiny",
            ModelSpec("hf", "IDEA-Research/grounding-dino-tiny"),
        ),
        ("local:/srv/models/clip", ModelSpec("local", "/srv/models/clip")),
        ("fixture:shapes-clip", ModelSpec("fixture", "shapes-clip")),
        ("  fixture:shapes-clip\n", ModelSpec("fixture", "shapes-clip")),
    ],
)
def test_parses_good_specs(text: str, expected: ModelSpec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "open_clip:ViT-B-32@laion2b_s34b_b79k",
        "hf:Qwen/Qwen2.5-VL-3B-Instruct@a1b2c3",
        "local:/srv/models/clip",
        "fixture:shapes-clip",
    ],
)
def test_round_trips_through_str(text: str) -> None:
    assert str(parse_spec(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ViT-B-32",  # no scheme
        "open_clip:",  # no name
        ":ViT-B-32",
        "open_clip:ViT-B-32@",  # empty revision
        "open_clip:ViT-B-32@a@b",
        "open_clip:ViT B 32",  # whitespace inside
        "Open_Clip:ViT-B-32",  # schemes are lower case
    ],
)
def test_malformed_specs_raise_unknown_model(text: str) -> None:
    with pytest.raises(UnknownModel, match="malformed"):
        parse_spec(text)


@pytest.mark.parametrize("text", ["timm:vit_base", "s3:bucket/model", "http://example.com/model"])
def test_unknown_schemes_raise_and_list_the_known_ones(text: str) -> None:
    with pytest.raises(UnknownModel, match="unknown model scheme") as caught:
        parse_spec(text)
    assert "open_clip, hf, local, fixture" in str(caught.value)


def test_local_specs_take_no_revision() -> None:
    with pytest.raises(UnknownModel, match="no revision"):
        parse_spec("local:/srv/models/clip@v2")


def test_unknown_model_is_an_invalid_input() -> None:
    # The API maps InvalidInput to 4xx: a bad spec is the caller's mistake, not a server fault.
    assert issubclass(UnknownModel, InvalidInput)
