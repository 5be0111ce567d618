"""The agent's retrieve uses region vectors for a named object, and cites the matched crop's
box without a grounding call when the crop matched strongly.

Images are multi-object shapes images (small shapes, several an image) on the fixture CLIP.
Their regions come from their true boxes, written through the detection write-back as a
perfect detector would: what is asserted is the agent's use of regions, not a detector's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from agents.conftest import clear_mmrag_env, world_settings

from mmrag.agents.regions import merge_hits, names_an_object, region_box
from mmrag.models.fixtures.multi_object import MultiObjectImage, sparse
from mmrag.models.fixtures.shapes import COLOURS, KINDS
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.store import Hit
from mmrag.services import Services

pytestmark = pytest.mark.slow
PHRASES = [f"{colour} {kind}" for colour in COLOURS for kind in KINDS]


def png(item: MultiObjectImage) -> bytes:
    out = io.BytesIO()
    item.image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def region_world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Services, dict[str, MultiObjectImage]]]:
    with pytest.MonkeyPatch.context() as patch:
        clear_mmrag_env(patch)
        data_dir = tmp_path_factory.mktemp("agent-regions") / "data"
        services = Services.open(world_settings(data_dir, "fixture:shapes-vlm"))
        try:
            gallery = sparse(24, block=9)
            report = services.ingest(
                [IngestItem.upload(png(item), f"{n}.png") for n, item in enumerate(gallery)]
            )
            ids = [result.image.image_id for result in report.results if result.image]
            writer = services.tools._annotations
            for image_id, item in zip(ids, gallery, strict=True):
                boxes = [
                    {"label": obj.phrase, "score": 1.0, "box": list(obj.box)}
                    for obj in item.objects
                ]
                writer.apply_boxes(image_id, PHRASES, boxes, "truth")
            yield services, dict(zip(ids, gallery, strict=True))
        finally:
            services.close()


def iou(a: list[float], b: tuple[int, int, int, int]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_where_is_cites_the_region_box_without_grounding(
    region_world: tuple[Services, dict[str, MultiObjectImage]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services, truth = region_world
    grounded: list[str] = []
    real_run = services.tools.run

    def counting_run(tool: str, requests: Any, *args: Any, **kwargs: Any) -> Any:
        if tool == "ground":
            grounded.extend(request.image_id for request in requests)
        return real_run(tool, requests, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.tools, "run", counting_run)
    result = services.agent().ask("where is the blue triangle?")

    assert [step["tool"] for step in result.plan["steps"]] == ["retrieve", "ground"]
    retrieved = result.trace[0]["outputs"]
    with_region = [out for out in retrieved if "region" in out]
    assert with_region, retrieved
    # The first hit holds a blue triangle, found through its crop.
    first = truth[retrieved[0]["image_id"]]
    assert first.find("blue triangle") is not None
    by_region = [out for out in result.trace[1]["outputs"] if out.get("via") == "region"]
    assert by_region
    # Those images were answered from their regions: no grounding call for them.
    assert not {out["image_id"] for out in by_region} & set(grounded)
    cited = [c for c in result.citations if c["image_id"] in {o["image_id"] for o in by_region}]
    assert cited
    for citation in cited:
        placed = truth[citation["image_id"]].find("blue triangle")
        assert placed is not None
        assert iou(citation["box"], placed.box) >= 0.5


def test_which_searches_use_regions() -> None:
    assert names_an_object("blue triangle")
    assert names_an_object("the tiny red circle in the corner of the harbour photo")
    assert not names_an_object("photos from our summer trip to the harbour at dusk")


def test_merge_ranks_by_fused_rank_and_keeps_cosines() -> None:
    region = {"box": [1, 2, 3, 4], "label": "red circle", "score": 0.9, "match": 0.4}
    images = [Hit("a" * 32, 0.8, {}), Hit("b" * 32, 0.7, {})]
    regions = [Hit("c" * 32, 0.4, {}, region), Hit("b" * 32, 0.3, {}, region)]

    merged = merge_hits(images, regions, limit=3, region_weight=2.0)

    # b: 1/4 + 2/4; c: 2/3; a: 1/3.
    assert [(hit.image_id[0], hit.score) for hit in merged] == [("b", 0.7), ("c", 0.4), ("a", 0.8)]
    assert merged[0].region == region
    assert merged[2].region is None


def test_a_region_is_cited_only_when_strong_and_the_same_phrase() -> None:
    region = {"box": [1.04, 2, 3, 4], "label": "Red  Circle", "score": 0.9, "match": 0.4}
    assert region_box(region, "red circle", strong=0.3) == {
        "label": "red circle",
        "score": 0.9,
        "box": [1.0, 2.0, 3.0, 4.0],
    }
    assert region_box(region, "red circle", strong=0.5) is None
    assert region_box(region, "blue square", strong=0.3) is None
    assert region_box(None, "red circle", strong=0.3) is None
