"""The search API answers the same top results whichever embedding backend serves: the fixture
CLIP behind the real API, once per backend, on the same held-out images and queries."""

from __future__ import annotations

import io

import httpx
import pytest
from api.live_server import LiveServer

from mmrag.config import Settings
from mmrag.models.fixtures import fixture_directory
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_world
from mmrag.retrieval.stores import open_store

pytestmark = pytest.mark.slow

SEED = HELD_OUT_SEEDS.start + 710_000_000
QUERIES = ["a red circle", "a blue triangle", "a green square", "a yellow circle", "a red square"]
BACKENDS = ["torch", "onnxruntime", "openvino", "auto"]
# Two images whose torch scores are closer than this are a tie at int8's resolution (the
# parity bound, 0.99 cosine per vector, moves a score by about this much): either may lead.
NEAR_TIE = 0.01


def _results(tmp: pytest.TempPathFactory, backend: str) -> dict[str, list[str]]:
    scenes = generate_world(40, seed=SEED)
    files = []
    for scene in scenes:
        out = io.BytesIO()
        scene.image.save(out, "PNG")
        files.append(("files", (f"{scene.seed}.png", out.getvalue(), "image/png")))
    settings = Settings(
        data_dir=tmp.mktemp(f"search-{backend}") / "data",
        models={"embedder": "fixture:shapes-clip", "device": "cpu", "backend": backend},
        samples={"enabled": False},
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post("/v1/images", files=files).status_code == 201
        ready = client.get("/readyz").json()
        embedding = ready["embedding"]
        if backend != "auto":
            assert embedding["backend"] == backend
        answers = {"embedding": [embedding["backend"], embedding["precision"]]}
        for query in QUERIES:
            response = client.post("/v1/search", json={"text": query, "limit": 5})
            assert response.status_code == 200
            results = response.json()["results"]
            answers[query] = [result["id"] for result in results]
            answers[f"{query}/scores"] = [str(result["score"]) for result in results]
    # The payload as stored (the API shows callers a narrower view of it).
    store = open_store(settings)
    try:
        ids = sorted({image_id for query in QUERIES for image_id in answers[query]})
        answers["stored"] = sorted({str(p.get("embedding")) for p in store.get(ids).values()})
    finally:
        store.close()
    return answers


@pytest.fixture(scope="module")
def by_backend(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, list[str]]]:
    fixture_directory("shapes-clip")  # trained first: a cold cache outlasts a server's start
    return {backend: _results(tmp_path_factory, backend) for backend in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_search_answers_as_torch_does(
    backend: str, by_backend: dict[str, dict[str, list[str]]]
) -> None:
    reference, answers = by_backend["torch"], by_backend[backend]
    for query in QUERIES:
        top, reference_top = answers[query][0], reference[query][0]
        if top != reference_top:
            # Only a near-tie may swap: torch ranked this backend's winner within NEAR_TIE.
            scores = dict(
                zip(reference[query], map(float, reference[f"{query}/scores"]), strict=True)
            )
            assert top in scores, query
            assert scores[reference_top] - scores[top] < NEAR_TIE, (query, scores)
        # int8 and bf16 may swap near-ties further down, never lose the top matches.
        assert len(set(answers[query]) & set(reference[query])) >= 4, query


def test_each_vector_records_what_made_it(by_backend: dict[str, dict[str, list[str]]]) -> None:
    for answers in by_backend.values():
        backend, precision = answers["embedding"]
        assert answers["stored"] == [str({"backend": backend, "precision": precision})]
