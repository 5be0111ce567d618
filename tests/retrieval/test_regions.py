"""Region crops: which boxes become regions, and the indexer over the real store and blobs."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmrag.config import RegionSettings, Settings
from mmrag.errors import NotFound
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.regions import crop, grid_regions, plan_regions
from mmrag.retrieval.search import SearchQuery, SearchTarget
from mmrag.retrieval.store_edge import EdgeVectorStore
from mmrag.retrieval.switchable import SwitchableStore
from mmrag.services import Services


def box(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> dict[str, Any]:
    return {"label": "thing", "score": score, "box": [x1, y1, x2, y2]}


def test_bad_boxes_are_skipped_and_counted() -> None:
    boxes: list[dict[str, Any]] = [
        box(10, 10, 10, 30),  # zero width
        box(200, 200, 300, 300),  # wholly outside a 100 x 80 image
        box(-50, -50, 0.5, 0.5),  # outside but for half a pixel
        box(math.nan, 0, 10, 10),
        {"label": "x", "score": 0.9, "box": [1, 2, 3]},
        {"label": "x", "score": "high", "box": [1, 2, 30, 30]},
        box(0, 0, 40, 40, score=0.05),  # below the threshold
        box(90, 70, 150, 120),  # partly outside: clipped
        box(30, 40, 10, 20),  # corners given the wrong way round: normalised
    ]
    plan = plan_regions(boxes, 100, 80, RegionSettings(min_score=0.2))

    assert [region.box for region in plan.regions] == [(90, 70, 100, 80), (10, 20, 30, 40)]
    assert plan.skipped == 5
    assert plan.below_score == 2
    assert plan.capped == 0


def test_thousands_of_boxes_keep_the_best_scoring_up_to_the_cap() -> None:
    boxes = [box(n % 90, n % 70, n % 90 + 10, n % 70 + 10, score=n / 5000) for n in range(5000)]
    plan = plan_regions(boxes, 100, 80, RegionSettings(max_per_image=32, min_score=0.0))

    assert len(plan.regions) == 32
    assert plan.capped == 5000 - 32
    assert [region.score for region in plan.regions] == [
        round(n / 5000, 4) for n in range(4999, 4999 - 32, -1)
    ]


def test_grid_only_for_images_without_usable_boxes() -> None:
    grid = RegionSettings(grid=2)
    assert [r.box for r in plan_regions([], 100, 80, grid).regions] == [
        (0, 0, 50, 40),
        (50, 0, 100, 40),
        (0, 40, 50, 80),
        (50, 40, 100, 80),
    ]
    assert len(plan_regions([box(0, 0, 50, 50)], 100, 80, grid).regions) == 1
    assert plan_regions([], 100, 80, RegionSettings()).regions == []
    assert len(grid_regions(90, 90, 3)) == 9


def test_crop_adds_the_margin_within_the_image() -> None:
    image = Image.new("RGB", (100, 80))
    region = plan_regions([box(10, 10, 30, 20)], 100, 80, RegionSettings()).regions[0]
    assert crop(image, region, margin=0.5).size == (40, 20)  # 10 px each side, 5 above/below
    edge = plan_regions([box(0, 0, 20, 20)], 100, 80, RegionSettings()).regions[0]
    assert crop(image, edge, margin=0.5).size == (30, 30)


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_indexer_over_the_real_store(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    data = settings.model_dump()
    data["regions"].update(max_per_image=8)
    services = Services.open(Settings.model_validate(data))
    try:
        report = services.ingest([IngestItem.upload(png((120, 90)), "a.png")])
        image_id = report.indexed[0]
        # Region search before any region: said, not an empty list.
        with pytest.raises(NotFound, match="no image has region vectors yet"):
            services.search.search(SearchQuery(text="red", target=SearchTarget.REGION))

        boxes = [box(n % 100, n % 70, n % 100 + 20, n % 70 + 20) for n in range(3000)]
        boxes += [box(5, 5, 5, 50), box(500, 500, 600, 600)]
        with caplog.at_level(logging.INFO, logger="mmrag.retrieval.regions"):
            services.tools._annotations.apply_boxes(image_id, ["thing"], boxes, "test")
        assert "past the cap of 8" in caplog.text

        payload = services.image(image_id)
        assert len(payload["boxes"]) == 256  # the payload's own cap, unchanged
        assert len(payload["regions"]) == 8
        assert services.store.count_regions() == 1
        services.search._regions_seen = False  # the 5 s recheck, skipped
        services.search._regions_checked = -math.inf
        hits = services.search.search(SearchQuery(text="red", target=SearchTarget.REGION)).hits
        assert [hit.image_id for hit in hits] == [image_id]
        assert hits[0].region is not None
        assert hits[0].region["label"] == "thing"
        store = services.store
        assert isinstance(store, SwitchableStore)
        edge = store.current
        assert isinstance(edge, EdgeVectorStore)
        records = edge._records([image_id], payload=False, vectors=["region"])
        stored = records[0].vector
        assert isinstance(stored, dict)
        assert np.asarray(stored["region"]).shape == (8, services.embedder().dim)

        # The boxes of a later run replace these regions; with none left, they go.
        services.tools._annotations.apply_boxes(image_id, ["thing"], [], "test")
        assert services.image(image_id)["regions"] == []
        assert services.store.count_regions() == 0
        with pytest.raises(NotFound):
            services.regions.index("f" * 32)
    finally:
        services.close()


def test_grid_setting_gives_new_images_regions_at_ingest(settings: Settings) -> None:
    data = settings.model_dump()
    data["regions"].update(grid=3)
    services = Services.open(Settings.model_validate(data))
    try:
        image_id = services.ingest([IngestItem.upload(png((90, 60)), "g.png")]).indexed[0]
        regions = services.image(image_id)["regions"]
        assert len(regions) == 9
        assert regions[0] == {"box": [0, 0, 30, 20], "label": "grid", "score": 0.0}
    finally:
        services.close()


def test_absurd_region_settings_are_refused() -> None:
    for bad in ({"max_per_image": 100_000}, {"grid": 50}, {"margin": -1}, {"min_score": 2}):
        with pytest.raises(ValueError, match="regions"):
            Settings(regions=bad)
