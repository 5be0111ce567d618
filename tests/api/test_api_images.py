"""/v1/images over real HTTP: upload, read back, dedupe, delete, and every bad input."""

from __future__ import annotations

import hashlib
import io
import json
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from api.live_server import LiveServer
from PIL import Image
from retrieval.ingest_images import png_claiming

from mmrag.config import LimitSettings, Settings

PROBLEM = "application/problem+json"


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def upload(client: httpx.Client, *files: tuple[str, bytes], **form: object) -> httpx.Response:
    return client.post(
        "/v1/images",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=form,
    )


def count(client: httpx.Client) -> int:
    response = client.get("/v1/images", params={"limit": 1})
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_upload_then_read_back(live_api: httpx.Client) -> None:
    data = png_bytes((200, 30, 30))

    response = upload(
        live_api,
        ("red.png", data),
        captions="a red rectangle",
        metadata=json.dumps({"camera": "x100"}),
    )

    assert response.status_code == 201, response.text
    [item] = response.json()["items"]
    sha = hashlib.sha256(data).hexdigest()
    assert item["sha256"] == sha
    assert item["id"] == sha[:32]
    assert (item["width"], item["height"]) == (48, 40)
    assert item["duplicate"] is False

    image = live_api.get(f"/v1/images/{item['id']}").json()
    assert image["caption"] == "a red rectangle"
    assert image["metadata"] == {"camera": "x100"}
    assert image["source"] == {"kind": "upload", "uri": "red.png"}

    content = live_api.get(f"/v1/images/{item['id']}/content")
    assert content.content == data
    assert content.headers["content-type"] == "image/png"
    thumbnail = live_api.get(f"/v1/images/{item['id']}/thumbnail")
    assert thumbnail.status_code == 200
    assert Image.open(io.BytesIO(thumbnail.content)).size[0] <= 256


def test_same_bytes_twice_is_one_image(live_api: httpx.Client) -> None:
    data = png_bytes((10, 200, 10))
    first = upload(live_api, ("a.png", data)).json()["items"][0]

    again = upload(live_api, ("b.png", data), captions="another caption")

    assert again.status_code == 201
    second = again.json()["items"][0]
    assert second["id"] == first["id"]
    assert second["duplicate"] is True
    assert count(live_api) == 1
    # A no-op: the first upload's facts stand.
    assert live_api.get(f"/v1/images/{first['id']}").json()["source"]["uri"] == "a.png"


def test_list_pages(live_api: httpx.Client) -> None:
    for shade in range(5):
        assert upload(live_api, (f"{shade}.png", png_bytes((shade * 40, 0, 0)))).status_code == 201

    first = live_api.get("/v1/images", params={"limit": 2}).json()
    rest = live_api.get("/v1/images", params={"limit": 10, "offset": 2}).json()

    assert first["total"] == 5
    assert len(first["items"]) == 2
    assert len(rest["items"]) == 3
    ids = {item["id"] for item in first["items"] + rest["items"]}
    assert len(ids) == 5


def test_delete_removes_point_and_blobs(live_api: httpx.Client, settings: Settings) -> None:
    keep = upload(live_api, ("keep.png", png_bytes((1, 2, 3)))).json()["items"][0]
    gone = upload(live_api, ("gone.png", png_bytes((4, 5, 6)))).json()["items"][0]

    assert live_api.delete(f"/v1/images/{gone['id']}").status_code == 204

    assert_problem(live_api.get(f"/v1/images/{gone['id']}"), 404)
    assert_problem(live_api.get(f"/v1/images/{gone['id']}/content"), 404)
    assert not any(gone["sha256"] in path.name for path in settings.blobs_dir.rglob("*"))
    assert live_api.get(f"/v1/images/{keep['id']}/content").status_code == 200
    assert_problem(live_api.delete(f"/v1/images/{gone['id']}"), 404)


def test_partial_batch_keeps_good_files_and_reports_bad(live_api: httpx.Client) -> None:
    response = upload(live_api, ("good.png", png_bytes((9, 9, 9))), ("bad.jpg", b"not an image"))

    assert response.status_code == 201
    body = response.json()
    assert len(body["items"]) == 1
    [failure] = body["failed"]
    assert failure["source"] == "bad.jpg"
    assert failure["status"] == 415


# -- bad input: a clear problem, and nothing stored changes ---------------------------------


@pytest.fixture
def stored(live_api: httpx.Client) -> str:
    response = upload(live_api, ("stored.png", png_bytes((50, 60, 70))), captions="kept")
    image_id: str = response.json()["items"][0]["id"]
    return image_id


def assert_unchanged(client: httpx.Client, image_id: str) -> None:
    assert count(client) == 1
    assert client.get(f"/v1/images/{image_id}").json()["caption"] == "kept"


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("corrupt.png", png_bytes((1, 1, 1))[:60], 415),
        ("notes.jpg", b"these are my notes, not a photo\n" * 4, 415),
        ("empty.jpg", b"", 415),
        ("bomb.png", png_claiming(60_000, 60_000), 413),
    ],
)
def test_bad_uploads(
    live_api: httpx.Client, stored: str, name: str, data: bytes, status: int
) -> None:
    assert_problem(upload(live_api, (name, data)), status)
    assert_unchanged(live_api, stored)


def test_fifty_megapixel_png_is_over_the_pixel_limit(live_api: httpx.Client, stored: str) -> None:
    out = io.BytesIO()
    Image.new("L", (10_000, 5_000)).save(out, "PNG")  # 50 MP, compresses to ~50 kB

    assert_problem(upload(live_api, ("huge.png", out.getvalue())), 413)
    assert_unchanged(live_api, stored)


def test_upload_over_the_byte_limits(settings: Settings, tmp_path: Path) -> None:
    small = settings.model_copy(
        update={
            "limits": LimitSettings(
                max_image_bytes=2048, max_request_bytes=64 * 1024, max_json_bytes=64 * 1024
            )
        }
    )
    with LiveServer(small) as server, httpx.Client(base_url=server.url) as client:
        ok = upload(client, ("ok.png", png_bytes((1, 2, 3), (8, 8))))
        assert ok.status_code == 201
        over_image = upload(client, ("big.bmp", b"BM" + b"\0" * 4096))
        assert_problem(over_image, 413)
        over_request = upload(client, ("bigger.bin", b"\0" * 128 * 1024))
        assert_problem(over_request, 413)
        assert count(client) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/cat.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://localhost/x.png",
    ],
)
def test_urls_to_private_addresses_are_refused(
    live_api: httpx.Client, stored: str, url: str
) -> None:
    response = live_api.post("/v1/images/from-urls", json={"urls": [url]})

    assert_problem(response, 403)
    assert_unchanged(live_api, stored)


def test_non_http_urls_are_refused(live_api: httpx.Client, stored: str) -> None:
    response = live_api.post("/v1/images/from-urls", json={"urls": ["file:///etc/passwd"]})

    assert response.status_code in (403, 422)
    assert_unchanged(live_api, stored)


def test_paths_outside_the_allowed_roots(
    live_api: httpx.Client, stored: str, settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(png_bytes((7, 7, 7)))
    root = settings.allowed_roots[0]
    (root / "link").symlink_to(outside)

    for path in (str(outside), f"{root}/../outside", f"{root}/link", "/etc"):
        response = live_api.post("/v1/images/from-paths", json={"paths": [path]})
        assert_problem(response, 403)
    assert_unchanged(live_api, stored)


def test_paths_inside_the_allowed_roots(live_api: httpx.Client, settings: Settings) -> None:
    root = settings.allowed_roots[0]
    (root / "nested").mkdir()
    (root / "nested" / "a.png").write_bytes(png_bytes((1, 100, 1)))
    (root / "b.png").write_bytes(png_bytes((100, 1, 1)))

    response = live_api.post("/v1/images/from-paths", json={"paths": [str(root)]})

    assert response.status_code == 201, response.text
    assert len(response.json()["items"]) == 2


def test_malformed_metadata_json(live_api: httpx.Client, stored: str) -> None:
    response = upload(live_api, ("m.png", png_bytes((3, 3, 3))), metadata="{not json")

    assert_problem(response, 422)
    assert_unchanged(live_api, stored)


def test_unknown_and_malformed_ids(live_api: httpx.Client, stored: str) -> None:
    assert_problem(live_api.get("/v1/images/" + "0" * 32), 404)
    # Not an id at all: no such resource, and the router never reaches the route.
    assert_problem(live_api.get("/v1/images/not-an-id"), 404)
    assert_problem(live_api.delete("/v1/images/" + "f" * 32), 404)
    assert_unchanged(live_api, stored)


def test_progress_events_then_result(live_api: httpx.Client, settings: Settings) -> None:
    root = settings.allowed_roots[0]
    for shade in range(5):
        (root / f"{shade}.png").write_bytes(png_bytes((shade * 50, 9, 9)))
    (root / "broken.png").write_bytes(b"nope")

    with live_api.stream(
        "POST",
        "/v1/images/from-paths",
        json={"paths": [str(root)]},
        headers={"accept": "text/event-stream"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
            for block in response.read().decode().strip().split("\n\n")
        ]

    progress = [data for name, data in events if name == "progress"]
    assert [update["done"] for update in progress] == list(range(1, 7))
    assert all(update["total"] == 6 for update in progress)
    name, result = events[-1]
    assert name == "result"
    assert len(result["items"]) == 5
    assert result["failed"][0]["status"] == 415


def test_progress_stream_reports_a_failed_request_as_an_error_event(
    live_api: httpx.Client, settings: Settings
) -> None:
    root = settings.allowed_roots[0]
    (root / "only.png").write_bytes(b"not an image at all")

    response = live_api.post(
        "/v1/images/from-paths",
        json={"paths": [str(root)]},
        headers={"accept": "text/event-stream"},
    )

    last = response.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error")
    assert json.loads(last.split("data: ", 1)[1])["status"] == 415


def test_hostname_resolving_to_a_private_address(settings: Settings) -> None:
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        kept = upload(client, ("kept.png", png_bytes((5, 5, 5))))
        assert kept.status_code == 201
        # The name looks public; its DNS answer points into the private network.
        server.app.state.services.resolver = lambda host, port: [ip_address("10.1.2.3")]

        response = client.post(
            "/v1/images/from-urls", json={"urls": ["http://images.example.com/cat.jpg"]}
        )

        body = assert_problem(response, 403)
        assert "10.1.2.3" in str(body["detail"])
        assert count(client) == 1


def test_a_folder_over_the_request_image_limit(settings: Settings) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_request_images": 2})}
    )
    root = settings.allowed_roots[0]
    for shade in range(3):
        (root / f"{shade}.png").write_bytes(png_bytes((shade, 1, 1)))
    with LiveServer(small) as server, httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/images/from-paths", json={"paths": [str(root)]})

        assert_problem(response, 413)
        assert count(client) == 0
