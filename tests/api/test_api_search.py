"""/v1/search over real HTTP with the tiny random embedder: modes, filters, bounds, errors.

Ranking *quality* is asserted with the fixture model in test_search_quality.py; here the
embedder is random, so the tests assert what must hold for any embedder.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import pytest
from api.live_server import LiveServer
from PIL import Image

from mmrag.config import Settings

PROBLEM = "application/problem+json"


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


GALLERY = [
    ((250, 10, 10), "a red square on grey", {"camera": "x100", "year": 2019}),
    ((10, 250, 10), "a green circle", {"camera": "x100", "year": 2021}),
    ((10, 10, 250), "a blue triangle and a red circle", {"camera": "z9", "year": 2023}),
    ((250, 250, 10), "a yellow square", {"camera": "z9", "year": 2024}),
]


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def gallery_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: object
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """One server with a small captioned gallery, shared by the read-only tests below; once
    on the embedded engine and once through qdrant-client (its local mode speaks the same
    client API as a server)."""
    root = tmp_path_factory.mktemp("search")
    store = {"backend": request.param, "url": ":memory:" if request.param == "qdrant" else None}
    settings = Settings(
        data_dir=root / "data",
        models={"embedder": f"local:{tiny_clip_dir}", "device": "cpu"},
        samples={"enabled": False},
        store=store,
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        ids = {}
        for colour, caption, metadata in GALLERY:
            response = client.post(
                "/v1/images",
                files=[("files", (f"{caption}.png", png_bytes(colour), "image/png"))],
                data={"captions": caption, "metadata": json.dumps(metadata)},
            )
            assert response.status_code == 201, response.text
            ids[caption] = response.json()["items"][0]["id"]
        yield client, ids


def search(client: httpx.Client, **body: object) -> httpx.Response:
    return client.post("/v1/search", json=body)


@pytest.mark.parametrize("target", ["image", "caption", "hybrid"])
def test_text_search_returns_scored_results(
    gallery_api: tuple[httpx.Client, dict[str, str]], target: str
) -> None:
    client, ids = gallery_api

    response = search(client, text="a red square", target=target, limit=3)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["target"] == target
    results = body["results"]
    assert 1 <= len(results) <= 3
    assert {result["id"] for result in results} <= set(ids.values())
    scores = [result["score"] for result in results]
    assert scores == sorted(scores, reverse=True)
    assert all(result["thumbnail_url"].endswith("/thumbnail") for result in results)


def test_hybrid_ranks_the_caption_with_the_words_first(
    gallery_api: tuple[httpx.Client, dict[str, str]],
) -> None:
    """The BM25 side matches words even when the random dense side is noise: "yellow"
    appears in one caption only, so with RRF it ranks at least as high as its dense rank."""
    client, ids = gallery_api

    hybrid = search(client, text="yellow", target="hybrid", limit=4).json()["results"]
    dense = search(client, text="yellow", target="image", limit=4).json()["results"]

    target = ids["a yellow square"]
    hybrid_rank = [r["id"] for r in hybrid].index(target)
    dense_rank = [r["id"] for r in dense].index(target)
    assert hybrid_rank <= dense_rank
    assert hybrid_rank <= 1


def test_image_by_id_leaves_out_the_query_image(
    gallery_api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, ids = gallery_api
    query = ids["a green circle"]

    results = search(client, image_id=query, limit=10).json()["results"]

    assert len(results) == len(GALLERY) - 1
    assert query not in {result["id"] for result in results}


def test_image_upload_search_finds_the_same_image_first(
    gallery_api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, ids = gallery_api
    encoded = base64.b64encode(png_bytes((10, 10, 250))).decode()

    results = search(client, image_b64=encoded, limit=1).json()["results"]

    assert results[0]["id"] == ids["a blue triangle and a red circle"]
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_image_to_caption(gallery_api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, ids = gallery_api

    response = search(client, image_id=ids["a red square on grey"], target="caption", limit=2)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    [
        ({"metadata": {"camera": "z9"}}, {"a blue triangle and a red circle", "a yellow square"}),
        (
            {"metadata": {"year": {"gte": 2021, "lte": 2023}}},
            {"a green circle", "a blue triangle and a red circle"},
        ),
        ({"metadata": {"camera": "x100", "year": {"lte": 2019}}}, {"a red square on grey"}),
        ({"created": {"gte": "2000-01-01T00:00:00Z"}}, {caption for _, caption, _ in GALLERY}),
        ({"created": {"lte": "2000-01-01T00:00:00Z"}}, set()),
        ({"labels": {"any": ["forklift"]}}, set()),
        ({"source": "upload", "format": "PNG"}, {caption for _, caption, _ in GALLERY}),
    ],
)
def test_filters_restrict_results(
    gallery_api: tuple[httpx.Client, dict[str, str]],
    search_filter: dict[str, object],
    expected: set[str],
) -> None:
    client, ids = gallery_api

    response = search(client, text="a shape", limit=10, filter=search_filter)

    assert response.status_code == 200, response.text
    found = {result["id"] for result in response.json()["results"]}
    assert found == {ids[caption] for caption in expected}


def test_limit_and_offset_page_through(gallery_api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, _ = gallery_api

    everything = [r["id"] for r in search(client, text="x", limit=4).json()["results"]]
    page = [r["id"] for r in search(client, text="x", limit=2, offset=2).json()["results"]]

    assert page == everything[2:4]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"text": "x", "limit": 10**9}, 422),
        ({"text": "x", "offset": 10**9}, 422),
        ({"text": "x", "limit": 0}, 422),
        ({"text": "x", "filter": {"colour": "red"}}, 422),
        ({"text": "x", "target": "everything"}, 422),
        ({"text": "   "}, 422),
        ({"text": "x" * 5000}, 422),
        ({}, 422),
        ({"text": "x", "image_id": "0" * 32}, 422),
        ({"image_id": "0" * 32}, 404),
        ({"image_id": "../../etc/passwd"}, 422),
        ({"image_b64": "%%% not base64 %%%"}, 422),
        ({"image_b64": base64.b64encode(b"not an image").decode()}, 415),
        ({"image_id": "0" * 32, "target": "hybrid"}, 422),
        ({"text": "x", "unexpected": 1}, 422),
    ],
)
def test_bad_searches(
    gallery_api: tuple[httpx.Client, dict[str, str]], body: dict[str, object], status: int
) -> None:
    client, _ = gallery_api

    response = search(client, **body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["detail"]


def test_malformed_json_body(gallery_api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, _ = gallery_api

    response = client.post(
        "/v1/search", content=b'{"text": "x", ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


def test_wrong_content_type(gallery_api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, _ = gallery_api

    response = client.post("/v1/search", content=b"text=x", headers={"content-type": "text/plain"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


def test_chunked_body_over_the_limit(settings: Settings) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_request_bytes": 4096})}
    )

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(16):
            yield b"x" * 1024
        yield b'"}'

    with LiveServer(small) as server, httpx.Client(base_url=server.url) as client:
        response = client.post(
            "/v1/search", content=chunks(), headers={"content-type": "application/json"}
        )

    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
