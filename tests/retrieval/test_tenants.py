"""Tenants: a workspace sees only what it indexed, in searches, lookups and the agent."""

from __future__ import annotations

import pytest
from workers.shapes_scenes import held_out, png_of

from mmrag.errors import InvalidInput, NotFound
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.search import SearchQuery
from mmrag.retrieval.tenants import tenant_filter
from mmrag.services import Services


def _ingest(services: Services, tenant: str | None, scenes: list[int]) -> list[str]:
    pool = held_out(6)
    items = [IngestItem.upload(png_of(pool[i]), f"{i}.png") for i in scenes]
    report = services.ingest_for(tenant, items) if tenant else services.ingest(items)
    return [r.image.image_id for r in report.results if r.image is not None]


def test_each_tenant_sees_only_what_it_indexed(services: Services) -> None:
    first = _ingest(services, "slack:T1", [0, 1, 2])
    second = _ingest(services, "slack:T2", [2, 3])  # scene 2: the same bytes, shared
    nobody = _ingest(services, None, [4, 5])
    query = SearchQuery(text="a red circle", limit=50)
    assert {h.image_id for h in services.search_for("slack:T1", query).hits} == set(first)
    assert {h.image_id for h in services.search_for("slack:T2", query).hits} == set(second)
    everyone = {h.image_id for h in services.search.search(query).hits}
    assert everyone == set(first) | set(second) | set(nobody)
    shared = first[2]
    assert services.image(shared)["tenants"] == ["slack:T1", "slack:T2"]
    with pytest.raises(NotFound):
        services.image(first[0], "slack:T2")
    with pytest.raises(NotFound):
        services.image(nobody[0], "slack:T1")
    # By example: another tenant's image cannot be the query either.
    with pytest.raises(NotFound):
        services.search_for("slack:T2", SearchQuery(image_id=first[0]))


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


def test_a_tenant_name_is_checked() -> None:
    with pytest.raises(InvalidInput):
        tenant_filter("slack:T1/../T2")
