"""Training examples of the grounding fixture: queries, canvases, OWLv2's box convention and
the patch assignment (no torch, milliseconds)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mmrag.models.fixtures.grounding_data import (
    assign_patches,
    on_canvas,
    query_targets,
    sample_example,
    scene_example,
    world_queries,
)
from mmrag.models.fixtures.grounding_recipe import DEFAULT_GROUNDING_RECIPE
from mmrag.models.fixtures.shapes import COLOURS, KINDS, Shape, generate_scene


def test_queries_name_every_colour_and_kind_with_and_without_articles() -> None:
    queries = {query.text: query for query in world_queries()}
    assert len(queries) == len(world_queries())  # no phrase twice
    for colour in COLOURS:
        for kind in KINDS:
            for text in (f"the {colour} {kind}", f"a {colour} {kind}", f"{colour} {kind}"):
                assert (queries[text].colour, queries[text].kind) == (colour, kind)
    assert (queries["triangle"].colour, queries["triangle"].kind) == (None, "triangle")
    assert (queries["the red shape"].colour, queries["the red shape"].kind) == ("red", None)
    blue_triangle = Shape("triangle", "blue", (0, 0, 10, 10))
    assert queries["a triangle"].matches(blue_triangle)
    assert queries["blue shape"].matches(blue_triangle)
    assert queries["shape"].matches(blue_triangle)
    assert not queries["the blue square"].matches(blue_triangle)
    assert not queries["red triangle"].matches(blue_triangle)


def test_boxes_are_relative_to_the_padded_square() -> None:
    scene = generate_scene(3)  # 64 px
    example = on_canvas(scene, width=128, height=80, left=40, top=10)
    assert example.image.size == (128, 80)
    assert example.padded_side == 128
    x1, y1, x2, y2 = scene.shapes[0].box
    cx, cy, w, h = example.normalised_boxes()[0]
    # OWLv2 pads at the bottom and right, so both axes divide by the longer side.
    assert cx == pytest.approx((x1 + x2) / 2 / 128 + 40 / 128)
    assert cy == pytest.approx((y1 + y2) / 2 / 128 + 10 / 128)
    assert (w, h) == pytest.approx(((x2 - x1) / 128, (y2 - y1) / 128))


def test_a_canvas_holds_the_scene_pixels_at_the_shifted_boxes() -> None:
    scene = generate_scene(11)
    example = on_canvas(scene, width=100, height=90, left=20, top=15)
    pasted = np.asarray(example.image)[15 : 15 + scene.size, 20 : 20 + scene.size]
    assert np.array_equal(pasted, np.asarray(scene.image))
    for shape, box in zip(scene.shapes, example.boxes, strict=True):
        x1, y1, x2, y2 = shape.box
        assert box == (x1 + 20, y1 + 15, x2 + 20, y2 + 15)
    with pytest.raises(ValueError, match="overflows"):
        on_canvas(scene, width=100, height=70, left=0, top=10)


def test_a_square_scene_is_its_own_example() -> None:
    scene = generate_scene(5)
    example = scene_example(scene)
    assert example.image.tobytes() == scene.image.tobytes()
    assert example.boxes == tuple(tuple(float(v) for v in shape.box) for shape in scene.shapes)


def test_samples_are_training_scenes_of_many_sizes_and_shapes() -> None:
    rng = random.Random(0)
    examples = [sample_example(rng, DEFAULT_GROUNDING_RECIPE) for _ in range(60)]
    sizes = {example.image.size for example in examples}
    assert any(width != height for width, height in sizes)  # canvases
    assert any(width == height for width, height in sizes)  # plain scenes
    assert min(max(size) for size in sizes) >= DEFAULT_GROUNDING_RECIPE.min_scene_size
    for example in examples:
        width, height = example.image.size
        for x1, y1, x2, y2 in example.boxes:
            assert 0 <= x1 < x2 <= width
            assert 0 <= y1 < y2 <= height


def test_patches_whose_centre_is_inside_a_box_belong_to_it() -> None:
    # A 4 x 4 grid: patch centres at 0.125, 0.375, 0.625, 0.875.
    boxes = np.array([[0.25, 0.25, 0.5, 0.5], [0.875, 0.875, 0.05, 0.05]], np.float32)
    assigned = assign_patches(boxes, grid=4).reshape(4, 4)
    expected = np.full((4, 4), -1)
    expected[0:2, 0:2] = 0  # centres 0.125 and 0.375 lie inside 0..0.5
    expected[3, 3] = 1  # too small for any centre but its own nearest patch
    assert np.array_equal(assigned, expected)


def test_tiny_shapes_get_the_patch_nearest_their_centre() -> None:
    boxes = np.array([[0.6, 0.1, 0.02, 0.02]], np.float32)
    assigned = assign_patches(boxes, grid=4)
    assert list(np.flatnonzero(assigned == 0)) == [2]  # row 0, column 2 (centre 0.625)


def test_query_targets_are_the_queries_that_name_each_patch_shape() -> None:
    scene = generate_scene(2, max_shapes=3)
    example = scene_example(scene)
    queries = world_queries()
    assigned = assign_patches(example.normalised_boxes(), grid=8)
    targets = query_targets(example, assigned, queries)
    assert targets.shape == (64, len(queries))
    assert not targets[assigned < 0].any()
    for patch in np.flatnonzero(assigned >= 0):
        shape = scene.shapes[assigned[patch]]
        named = {query.text for query, on in zip(queries, targets[patch], strict=True) if on}
        assert named == {query.text for query in queries if query.matches(shape)}
        assert f"the {shape.phrase}" in named
