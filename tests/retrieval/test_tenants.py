"""Tenants: each owns its points (retrieval/tenants.py), in searches, lookups, write-back and
the agent; the same bytes in two tenants share only the blob."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from workers.shapes_scenes import held_out, png_of

from mmrag.config import Settings
from mmrag.errors import InvalidInput, NotFound, QuotaExceeded
from mmrag.retrieval import sparse
from mmrag.retrieval.items import IngestItem, IngestReport
from mmrag.retrieval.search import SearchQuery, SearchTarget
from mmrag.retrieval.store import SparseVector
from mmrag.retrieval.tenants import (
    DEFAULT_TENANT,
    migrate_shared_points,
    point_key,
    tenant_filter,
)
from mmrag.services import Services


def _report(services: Services, tenant: str, scenes: list[int]) -> IngestReport:
    pool = held_out(6)
    items = [IngestItem.upload(png_of(pool[i]), f"{i}.png") for i in scenes]
    return services.ingest_for(tenant, items)


def _ingest(services: Services, tenant: str, scenes: list[int]) -> list[str]:
    report = _report(services, tenant, scenes)
    return [r.image.image_id for r in report.results if r.image is not None]


def _searched(services: Services, tenant: str) -> set[str]:
    query = SearchQuery(text="a red circle", limit=50)
    return {hit.image_id for hit in services.search_for(tenant, query).hits}


def test_each_tenant_sees_only_what_it_indexed(services: Services) -> None:
    first = _ingest(services, "slack:T1", [0, 1, 2])
    second = _ingest(services, "slack:T2", [2, 3])  # scene 2: the same bytes, the same id
    nobody = _ingest(services, DEFAULT_TENANT, [4, 5])
    assert first[2] == second[0]
    assert _searched(services, "slack:T1") == set(first)
    assert _searched(services, "slack:T2") == set(second)
    assert _searched(services, DEFAULT_TENANT) == set(nobody)
    assert services.root_store.count() == 7  # one point per (tenant, content)
    with pytest.raises(NotFound):
        services.image(first[0], "slack:T2")
    with pytest.raises(NotFound):
        services.image(nobody[0], "slack:T1")
    with pytest.raises(NotFound):
        services.image(first[0], DEFAULT_TENANT)
    # By example: another tenant's image cannot be the query either.
    with pytest.raises(NotFound):
        services.search_for("slack:T2", SearchQuery(image_id=first[0]))


def test_the_same_bytes_tell_nothing_and_share_nothing(services: Services) -> None:
    (shared,) = _ingest(services, "slack:T1", [2])
    again = _report(services, "slack:T1", [2])
    assert again.results[0].status == "duplicate"  # its own: a duplicate
    other = _report(services, "slack:T2", [2])
    assert other.results[0].status != "duplicate"  # the other's: nothing said
    services.scoped("slack:T1").store.set_payload(shared, {"caption": "T1's secret"})
    assert services.image(shared, "slack:T1")["caption"] == "T1's secret"
    assert services.image(shared, "slack:T2").get("caption") != "T1's secret"


def test_delete_is_per_tenant_and_the_blob_goes_with_the_last(services: Services) -> None:
    (shared,) = _ingest(services, "slack:T1", [2])
    _ingest(services, "slack:T2", [2])
    sha = services.image(shared, "slack:T1")["sha256"]
    services.scoped("slack:T1").delete_image(shared)
    with pytest.raises(NotFound):
        services.image(shared, "slack:T1")
    assert services.image(shared, "slack:T2")["sha256"] == sha
    assert services.blobs.exists("original", sha)
    services.scoped("slack:T2").delete_image(shared)
    assert not services.blobs.exists("original", sha)
    assert not services.blobs.exists("thumbnail", sha)


def test_a_computed_point_key_finds_nothing(services: Services) -> None:
    (image_id,) = _ingest(services, "slack:T1", [0])
    guessed = point_key("slack:T1", image_id)
    with pytest.raises(NotFound):
        services.image(guessed, DEFAULT_TENANT)
    with pytest.raises(NotFound):
        services.image(guessed, "slack:T2")


def test_the_agent_retrieves_and_looks_only_within_the_tenant(services: Services) -> None:
    mine = _ingest(services, "slack:T1", [0, 1])
    theirs = _ingest(services, "slack:T2", [3, 4])
    agent = services.agent()
    result = agent.ask("show me a red circle", tenant="slack:T1", owner="slack:T1")
    cited = {c["image_id"] for c in result.citations}
    assert cited
    assert cited <= set(mine)
    with pytest.raises(NotFound):
        agent.ask("what is this?", image_id=theirs[0], tenant="slack:T1")


@pytest.mark.parametrize("name", ["slack:T1/../T2", "", "a b", "x" * 129])
def test_a_tenant_name_is_checked(name: str) -> None:
    with pytest.raises(InvalidInput):
        tenant_filter(name)


def test_shared_points_of_the_first_design_are_migrated(services: Services) -> None:
    pool = held_out(2)
    item = IngestItem.upload(png_of(pool[0]), "0.png", ["a red circle"])
    (image_id,) = [r.image.image_id for r in services.ingest([item]).results if r.image]
    # As the Slack bot wrote it before: one point listing the workspaces that indexed it.
    services.root_store.set_payload(image_id, {"tenants": ["slack:T1", "slack:T2"]})
    assert migrate_shared_points(services.root_store) == 2
    assert migrate_shared_points(services.root_store) == 0
    for tenant in ("slack:T1", "slack:T2", DEFAULT_TENANT):
        assert services.image(image_id, tenant)["caption"] == "a red circle"
        query = SearchQuery(text="a red circle", target=SearchTarget.HYBRID)
        assert [hit.image_id for hit in services.search_for(tenant, query).hits] == [image_id]
    assert services.root_store.count() == 3


def test_a_migrated_point_leaves_its_regions_to_a_regions_job_and_keeps_the_model_caption(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = held_out(2)
    item = IngestItem.upload(png_of(pool[0]), "0.png", ["a red circle"])
    (image_id,) = [r.image.image_id for r in services.ingest([item]).results if r.image]
    boxes = [{"box": [2, 4, 20, 30], "label": "circle", "score": 0.9}]
    payload = {**services.store.get([image_id])[image_id], "boxes": boxes}
    assert services.regions.index(image_id, payload).regions == 1
    services.root_store.set_payload(
        image_id, {"tenants": ["slack:T1"], "model_caption": "a round red shape"}
    )
    encoded: list[list[str]] = []
    real = sparse.encode_document

    def encode(texts: Sequence[str]) -> SparseVector:
        encoded.append(list(texts))
        return real(texts)

    monkeypatch.setattr(sparse, "encode_document", encode)
    assert migrate_shared_points(services.root_store) == 1
    assert encoded == [["a red circle", "a round red shape"]]
    # No regions payload without the region vectors: a regions job takes the copy as not done.
    assert "regions" not in services.image(image_id, "slack:T1")
    assert services.scoped("slack:T1").store.count_regions() == 0


def test_the_slack_path_is_held_to_the_tenants_quota(settings: Settings) -> None:
    tenancy = settings.tenancy.model_copy(update={"max_images": 3})
    services = Services.open(settings.model_copy(update={"tenancy": tenancy}))
    try:
        # slack/intake.py ingests a workspace's files so; four are past the quota of three.
        with pytest.raises(QuotaExceeded, match="quota of 3"):
            _report(services, "slack:T1", [0, 1, 2, 3])
        assert services.scoped("slack:T1").store.count() == 0
        # Two uploads at once, two images each: the check and the ingest are one step.
        outcomes: list[BaseException | IngestReport] = []

        def upload(scenes: list[int]) -> None:
            try:
                outcomes.append(_report(services, "slack:T1", scenes))
            except QuotaExceeded as error:
                outcomes.append(error)

        threads = [threading.Thread(target=upload, args=(s,)) for s in ([0, 1], [2, 3])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(type(outcome).__name__ for outcome in outcomes) == [
            "IngestReport",
            "QuotaExceeded",
        ]
        assert services.scoped("slack:T1").store.count() == 2
    finally:
        services.close()
