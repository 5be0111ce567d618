"""The synthetic shapes world: determinism and exact ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmrag.models.fixtures.shapes import (
    COLOURS,
    HELD_OUT_SEEDS,
    KINDS,
    PALETTE,
    TRAIN_SEEDS,
    Caption,
    HorizontalPosition,
    Mention,
    Shape,
    ShapeScene,
    describes,
    generate_scene,
    generate_world,
    scene_captions,
    shape_phrases,
)

SEEDS = range(200)


def _pixels(scene: ShapeScene) -> np.ndarray:
    return np.asarray(scene.image, dtype=np.uint8)


def test_same_seed_gives_same_scene_and_pixels() -> None:
    for seed in (0, 7, 123456):
        first, second = generate_scene(seed), generate_scene(seed)
        assert first == second
        assert np.array_equal(_pixels(first), _pixels(second))


def test_different_seeds_give_different_scenes() -> None:
    scenes = generate_world(50, seed=0)
    assert len({scene.shapes for scene in scenes}) == 50


def test_world_is_the_scenes_of_consecutive_seeds() -> None:
    assert generate_world(3, seed=40) == [
        generate_scene(40),
        generate_scene(41),
        generate_scene(42),
    ]


def test_train_and_held_out_seed_ranges_are_disjoint() -> None:
    assert TRAIN_SEEDS.stop <= HELD_OUT_SEEDS.start


@pytest.mark.parametrize("size", [64, 96, 128])
def test_scene_image_is_rgb_of_the_requested_size(size: int) -> None:
    image = generate_scene(3, size=size).image
    assert image.mode == "RGB"
    assert image.size == (size, size)


def test_one_to_three_shapes_of_distinct_colour_and_kind() -> None:
    counts = set()
    for seed in SEEDS:
        scene = generate_scene(seed)
        counts.add(len(scene.shapes))
        pairs = [(shape.colour, shape.kind) for shape in scene.shapes]
        assert len(set(pairs)) == len(pairs)
        assert all(shape.colour in COLOURS and shape.kind in KINDS for shape in scene.shapes)
    assert counts == {1, 2, 3}


@pytest.mark.parametrize("size", [64, 128])
def test_boxes_lie_inside_the_image_and_never_overlap(size: int) -> None:
    for seed in SEEDS:
        scene = generate_scene(seed, size=size)
        for shape in scene.shapes:
            x1, y1, x2, y2 = shape.box
            assert 0 <= x1 < x2 <= size
            assert 0 <= y1 < y2 <= size
        for a, b in itertools.combinations(scene.shapes, 2):
            overlap_x = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
            overlap_y = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
            assert overlap_x <= 0 or overlap_y <= 0, (seed, a, b)


@pytest.mark.parametrize("size", [64, 128])
def test_boxes_are_the_tight_bounds_of_the_drawn_pixels(size: int) -> None:
    """On a noise-free render, each shape's colour occupies exactly its box's extent."""
    for seed in range(100):
        clean = generate_scene(seed, size=size, noise=False)
        pixels = _pixels(clean)
        for shape in clean.shapes:
            # A window one pixel wider than the box all round: shapes keep at least two pixels
            # apart, so only this shape's pixels can be in it, and a loose box would show.
            x1, y1, x2, y2 = shape.box
            left, top = max(0, x1 - 1), max(0, y1 - 1)
            window = pixels[top : y2 + 1, left : x2 + 1]
            mask = np.all(window == PALETTE[shape.colour], axis=-1)
            rows, columns = np.nonzero(mask)
            drawn = (
                left + columns.min(),
                top + rows.min(),
                left + columns.max() + 1,
                top + rows.max() + 1,
            )
            assert drawn == shape.box, (seed, shape)
            # And the shape fills a sensible part of its box (a triangle about half).
            assert mask.sum() >= 0.4 * shape.width * shape.height


def test_noise_only_touches_the_background() -> None:
    noisy = generate_scene(5)
    clean = generate_scene(5, noise=False)
    assert noisy.shapes == clean.shapes
    different = np.any(_pixels(noisy) != _pixels(clean), axis=-1)
    for shape in clean.shapes:
        x1, y1, x2, y2 = shape.box
        inside = np.all(_pixels(clean)[y1:y2, x1:x2] == PALETTE[shape.colour], axis=-1)
        assert not different[y1:y2, x1:x2][inside].any()
    assert different.any()


def test_captions_mention_every_shape() -> None:
    for seed in SEEDS:
        scene = generate_scene(seed)
        assert len(scene.captions) >= 3
        for text in scene.captions:
            for shape in scene.shapes:
                assert f"{shape.colour} {shape.kind}" in text, (text, shape)


def test_golden_scenes() -> None:
    """Pinned ground truth and captions. If this changes on purpose, bump SHAPES_VERSION so
    that fixture caches retrain on the new world."""
    two = generate_scene(0)
    assert two.shapes == (
        Shape("circle", "blue", (33, 32, 51, 50)),
        Shape("circle", "red", (9, 19, 31, 41)),
    )
    assert two.captions == (
        "a red circle and a blue circle",
        "a photo of a red circle and a blue circle",
        "two shapes: a red circle and a blue circle",
        "a red circle on the left and a blue circle in the middle",
    )
    three = generate_scene(5)
    assert [shape.phrase for shape in three.shapes] == [
        "green square",
        "green triangle",
        "blue triangle",
    ]
    assert three.captions[2] == (
        "three shapes: a green triangle, a green square and a blue triangle"
    )
    assert three.captions[3] == (
        "a green triangle on the left, a green square in the middle"
        " and a blue triangle on the right"
    )


def test_positional_caption_matches_where_shapes_are() -> None:
    for seed in SEEDS:
        scene = generate_scene(seed, size=96)
        placed = [c for c in scene_captions(scene) if any(m.position for m in c.mentions)]
        assert len(placed) == 1
        for mention in placed[0].mentions:
            (shape,) = scene.find(mention.colour, mention.kind)
            third = int(3 * shape.centre[0] // scene.size)
            assert mention.position == ("left", "middle", "right")[third]


def test_every_caption_and_phrase_describes_its_own_scene() -> None:
    for seed in SEEDS:
        scene = generate_scene(seed)
        for caption in (*scene_captions(scene), *shape_phrases(scene)):
            assert describes(caption, scene), caption


def test_describes_rejects_missing_extra_and_misplaced_shapes() -> None:
    scene = generate_scene(0)
    present = scene.shapes[0]
    absent = next(
        (colour, kind) for colour in COLOURS for kind in KINDS if not scene.has(colour, kind)
    )
    assert not describes(Caption("x", (Mention(*absent),), complete=False), scene)
    every = tuple(Mention(shape.colour, shape.kind) for shape in scene.shapes)
    assert describes(Caption("x", every, complete=True), scene)
    assert not describes(Caption("x", (*every, Mention(*absent)), complete=True), scene)
    if len(every) > 1:  # a complete caption must not leave shapes out
        assert not describes(Caption("x", every[:1], complete=True), scene)
    wrong: HorizontalPosition = "left" if scene.position_of(present) != "left" else "right"
    misplaced = Mention(present.colour, present.kind, wrong)
    assert not describes(Caption("x", (misplaced,), complete=False), scene)


def test_find_by_colour_and_kind() -> None:
    scene = next(s for s in generate_world(50) if len(s.shapes) == 3)
    for shape in scene.shapes:
        assert scene.find(shape.colour, shape.kind) == (shape,)
        assert shape in scene.find(colour=shape.colour)
        assert shape in scene.find(kind=shape.kind)
    assert scene.find() == scene.shapes


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="too small"):
        generate_scene(0, size=16)
    with pytest.raises(ValueError, match="max_shapes"):
        generate_scene(0, max_shapes=4)
