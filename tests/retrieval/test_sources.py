"""Where bytes may come from: files under the allowed roots, public http(s) URLs."""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from retrieval import ingest_images as images
from retrieval.local_http import LocalServer, Route, local_server

from mmrag.config import LimitSettings, Settings
from mmrag.errors import (
    ForbiddenSource,
    InvalidInput,
    NotFound,
    SourceUnreachable,
    TooLarge,
    UnsupportedMedia,
)
from mmrag.retrieval.addresses import AddressPolicy, IPAddress, Resolver, is_public
from mmrag.retrieval.sources import ServerPaths, UrlFetcher

LOOPBACK = AddressPolicy.allowing("127.0.0.1/32")
FAST = LimitSettings(url_timeout_s=2.0)


# -- server paths ----------------------------------------------------------------------------


@pytest.fixture
def allowed(settings: Settings) -> Path:
    return settings.allowed_roots[0]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.jpg").write_bytes(images.jpeg(seed=99))
    return directory


@pytest.fixture
def paths(settings: Settings) -> ServerPaths:
    return ServerPaths(settings.allowed_roots, settings.limits)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_file_under_a_root_is_read(paths: ServerPaths, allowed: Path) -> None:
    data = images.jpeg()
    file = write(allowed / "a.jpg", data)

    assert paths.read(file) == data
    assert paths.list_files(file) == [file]


def test_directory_is_walked_recursively_in_a_fixed_order(
    paths: ServerPaths, allowed: Path
) -> None:
    for name in ["b.png", "a.JPG", "sub/z.webp", "sub/deeper/c.gif", "a_dir/x.jpeg"]:
        write(allowed / name, b"x")
    write(allowed / "notes.txt", b"x")
    write(allowed / ".hidden.jpg", b"x")
    write(allowed / ".cache" / "d.jpg", b"x")

    listed = paths.list_files(allowed)

    assert [p.relative_to(allowed).as_posix() for p in listed] == [
        "a.JPG",
        "a_dir/x.jpeg",
        "b.png",
        "sub/deeper/c.gif",
        "sub/z.webp",
    ]


def test_path_outside_the_roots_is_forbidden(paths: ServerPaths, outside: Path) -> None:
    with pytest.raises(ForbiddenSource):
        paths.list_files(outside)
    with pytest.raises(ForbiddenSource):
        paths.read(outside / "secret.jpg")


def test_dotdot_out_of_a_root_is_forbidden(
    paths: ServerPaths, allowed: Path, outside: Path
) -> None:
    sneaky = allowed / ".." / "outside"

    with pytest.raises(ForbiddenSource):
        paths.list_files(sneaky)
    with pytest.raises(ForbiddenSource):
        paths.read(sneaky / "secret.jpg")


def test_symlink_out_of_a_root_is_forbidden(
    paths: ServerPaths, allowed: Path, outside: Path
) -> None:
    (allowed / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ForbiddenSource):
        paths.list_files(allowed / "link")
    with pytest.raises(ForbiddenSource):
        paths.read(allowed / "link" / "secret.jpg")


def test_symlinks_inside_a_walk_that_leave_the_roots_are_refused_on_read(
    paths: ServerPaths, allowed: Path, outside: Path
) -> None:
    write(allowed / "ok.jpg", images.jpeg())
    (allowed / "escape.jpg").symlink_to(outside / "secret.jpg")
    (allowed / "escape_dir").symlink_to(outside, target_is_directory=True)

    listed = paths.list_files(allowed)

    names = [p.name for p in listed]
    assert names == ["escape.jpg", "escape_dir", "ok.jpg"]  # listed, so the report says why
    for path in listed[:2]:
        with pytest.raises(ForbiddenSource):
            paths.read(path)
    assert paths.read(listed[2]) == images.jpeg()


def test_symlinks_inside_the_roots_are_followed_without_looping(
    paths: ServerPaths, allowed: Path
) -> None:
    write(allowed / "real" / "a.jpg", b"x")
    (allowed / "alias").symlink_to(allowed / "real", target_is_directory=True)
    (allowed / "real" / "loop").symlink_to(allowed, target_is_directory=True)

    listed = [p.relative_to(allowed).as_posix() for p in paths.list_files(allowed)]

    assert listed == ["alias/a.jpg", "real/a.jpg"]


def test_relative_path_is_invalid(paths: ServerPaths) -> None:
    with pytest.raises(InvalidInput):
        paths.list_files("photos/a.jpg")


def test_path_with_a_nul_byte_is_invalid(paths: ServerPaths, allowed: Path) -> None:
    with pytest.raises(InvalidInput):
        paths.read(f"{allowed}/a\x00.jpg")


def test_missing_path_is_not_found(paths: ServerPaths, allowed: Path) -> None:
    with pytest.raises(NotFound):
        paths.list_files(allowed / "nope")


def test_file_over_the_byte_limit_is_too_large(allowed: Path, settings: Settings) -> None:
    file = write(allowed / "big.jpg", images.jpeg((256, 256)))
    small = ServerPaths(settings.allowed_roots, LimitSettings(max_image_bytes=1024))

    with pytest.raises(TooLarge):
        small.read(file)


def test_fifo_is_refused_without_blocking(paths: ServerPaths, allowed: Path) -> None:
    fifo = allowed / "pipe.jpg"
    os.mkfifo(fifo)

    with pytest.raises(UnsupportedMedia):
        paths.read(fifo)


# -- address policy --------------------------------------------------------------------------

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.0.10",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:db8::1",  # documentation
]
ALLOWED = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_default_policy_refuses_non_public_addresses(address: str) -> None:
    parsed = ipaddress.ip_address(address)

    assert not is_public(parsed)
    with pytest.raises(ForbiddenSource):
        AddressPolicy().check("host.test", [parsed])


@pytest.mark.parametrize("address", ALLOWED)
def test_default_policy_allows_public_addresses(address: str) -> None:
    parsed = ipaddress.ip_address(address)

    assert AddressPolicy().check("host.test", [parsed]) == [parsed]


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")]

    with pytest.raises(ForbiddenSource):
        AddressPolicy().check("mixed.test", addresses)


def test_allowed_networks_are_exceptions_to_the_refusal() -> None:
    policy = AddressPolicy.allowing("127.0.0.1/32")

    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"))
    assert not policy.permits(ipaddress.ip_address("10.0.0.1"))


# -- URL fetching ----------------------------------------------------------------------------


class NoNetwork(httpx.BaseTransport):
    """A transport that fails the test if a request ever gets this far."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise AssertionError(f"connected to {request.url} although it should be refused")


def resolver_to(mapping: dict[str, str]) -> tuple[list[str], Resolver]:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        if host not in mapping:
            raise SourceUnreachable(f"cannot resolve host {host!r}")
        return [ipaddress.ip_address(mapping[host])]

    return asked, resolve


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with local_server() as running:
        yield running


def test_image_from_a_local_server_through_a_loopback_policy(server: LocalServer) -> None:
    data = images.jpeg()
    server.routes["/cat.jpg"] = Route(body=data, headers={"Content-Type": "image/jpeg"})

    with UrlFetcher(FAST, policy=LOOPBACK) as fetcher:
        assert fetcher.fetch(server.url("/cat.jpg")) == data


def test_fetch_connects_to_the_checked_address_and_keeps_the_host_name(
    server: LocalServer,
) -> None:
    data = images.jpeg()
    server.routes["/cat.jpg"] = Route(body=data)
    asked, resolve = resolver_to({"images.test": "127.0.0.1"})

    with UrlFetcher(FAST, policy=LOOPBACK, resolver=resolve) as fetcher:
        assert fetcher.fetch(server.url("/cat.jpg", host="images.test")) == data

    assert asked == ["images.test"]  # resolved once, by us; the connection used that address
    assert server.requests == [("/cat.jpg", f"images.test:{server.port}")]


def test_next_checked_address_is_tried_when_one_refuses_connections(
    server: LocalServer,
) -> None:
    data = images.jpeg()
    server.routes["/cat.jpg"] = Route(body=data)
    policy = AddressPolicy.allowing("127.0.0.0/8")

    def resolve(host: str, port: int) -> list[IPAddress]:
        # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1 only).
        return [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]

    with UrlFetcher(FAST, policy=policy, resolver=resolve) as fetcher:
        assert fetcher.fetch(server.url("/cat.jpg", host="images.test")) == data


def test_url_to_loopback_is_forbidden_by_default(server: LocalServer) -> None:
    server.routes["/cat.jpg"] = Route(body=images.jpeg())

    with UrlFetcher(FAST) as fetcher, pytest.raises(ForbiddenSource):
        fetcher.fetch(server.url("/cat.jpg"))

    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::1]:8080/",
        "http://0.0.0.0/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
    ],
)
def test_metadata_and_other_internal_urls_are_forbidden(url: str) -> None:
    transport = NoNetwork()

    with UrlFetcher(FAST, transport=transport) as fetcher, pytest.raises(ForbiddenSource):
        fetcher.fetch(url)

    assert transport.requests == []


def test_hostname_resolving_to_a_private_address_is_forbidden() -> None:
    transport = NoNetwork()
    asked, resolve = resolver_to({"intranet.test": "10.20.30.40"})

    with (
        UrlFetcher(FAST, resolver=resolve, transport=transport) as fetcher,
        pytest.raises(ForbiddenSource, match=re.escape("10.20.30.40")),
    ):
        fetcher.fetch("https://intranet.test/photo.jpg")

    assert asked == ["intranet.test"]
    assert transport.requests == []


def test_redirect_into_a_private_address_is_forbidden(server: LocalServer) -> None:
    server.routes["/go"] = Route(status=302, headers={"Location": "http://intranet.test/x.jpg"})
    _, resolve = resolver_to({"intranet.test": "10.0.0.5"})

    with (
        UrlFetcher(FAST, policy=LOOPBACK, resolver=resolve) as fetcher,
        pytest.raises(ForbiddenSource, match=re.escape("10.0.0.5")),
    ):
        fetcher.fetch(server.url("/go"))

    assert [path for path, _ in server.requests] == ["/go"]


def test_redirect_to_the_metadata_address_is_forbidden(server: LocalServer) -> None:
    server.routes["/go"] = Route(status=307, headers={"Location": "http://169.254.169.254/"})

    with UrlFetcher(FAST, policy=LOOPBACK) as fetcher, pytest.raises(ForbiddenSource):
        fetcher.fetch(server.url("/go"))


def test_redirect_to_another_scheme_is_forbidden(server: LocalServer) -> None:
    server.routes["/go"] = Route(status=301, headers={"Location": "file:///etc/passwd"})

    with UrlFetcher(FAST, policy=LOOPBACK) as fetcher, pytest.raises(ForbiddenSource):
        fetcher.fetch(server.url("/go"))


def test_redirects_within_allowed_addresses_are_followed(server: LocalServer) -> None:
    data = images.jpeg()
    server.routes["/one"] = Route(status=301, headers={"Location": "/two"})
    server.routes["/two"] = Route(status=302, headers={"Location": server.url("/cat.jpg")})
    server.routes["/cat.jpg"] = Route(body=data)

    with UrlFetcher(FAST, policy=LOOPBACK) as fetcher:
        assert fetcher.fetch(server.url("/one")) == data


def test_too_many_redirects_are_unreachable(server: LocalServer) -> None:
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    limits = LimitSettings(url_timeout_s=2.0, url_max_redirects=2)

    with (
        UrlFetcher(limits, policy=LOOPBACK) as fetcher,
        pytest.raises(SourceUnreachable, match="redirects"),
    ):
        fetcher.fetch(server.url("/loop"))

    assert len(server.requests) == 3


def test_declared_size_over_the_limit_is_refused_before_reading(server: LocalServer) -> None:
    server.routes["/big.jpg"] = Route(body=b"\xff" * 4096)
    limits = LimitSettings(max_image_bytes=1024, url_timeout_s=2.0)

    with UrlFetcher(limits, policy=LOOPBACK) as fetcher, pytest.raises(TooLarge):
        fetcher.fetch(server.url("/big.jpg"))


def test_streamed_body_over_the_limit_is_aborted(server: LocalServer) -> None:
    server.routes["/big.jpg"] = Route(body=b"\xff" * (64 * 1024), chunked=True)
    limits = LimitSettings(max_image_bytes=8 * 1024, url_timeout_s=2.0)

    with UrlFetcher(limits, policy=LOOPBACK) as fetcher, pytest.raises(TooLarge):
        fetcher.fetch(server.url("/big.jpg"))


def test_slow_server_hits_the_total_time_limit(server: LocalServer) -> None:
    server.routes["/slow.jpg"] = Route(body=b"x", delay_s=3.0)
    limits = LimitSettings(url_timeout_s=0.5)
    started = time.monotonic()

    with UrlFetcher(limits, policy=LOOPBACK) as fetcher, pytest.raises(SourceUnreachable):
        fetcher.fetch(server.url("/slow.jpg"))

    assert time.monotonic() - started < 2.0


def test_http_error_status_is_unreachable(server: LocalServer) -> None:
    with (
        UrlFetcher(FAST, policy=LOOPBACK) as fetcher,
        pytest.raises(SourceUnreachable, match="404"),
    ):
        fetcher.fetch(server.url("/missing.jpg"))


def test_compressed_transfer_is_refused(server: LocalServer) -> None:
    server.routes["/z.jpg"] = Route(body=b"\x1f\x8b....", headers={"Content-Encoding": "gzip"})

    with UrlFetcher(FAST, policy=LOOPBACK) as fetcher, pytest.raises(UnsupportedMedia):
        fetcher.fetch(server.url("/z.jpg"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/"])
def test_only_http_and_https_are_fetched(url: str) -> None:
    with UrlFetcher(FAST, transport=NoNetwork()) as fetcher, pytest.raises(ForbiddenSource):
        fetcher.fetch(url)


@pytest.mark.parametrize("url", ["http://user:secret@example.com/a.jpg", "not a url", "http:///x"])
def test_malformed_urls_are_invalid(url: str) -> None:
    with UrlFetcher(FAST, transport=NoNetwork()) as fetcher, pytest.raises(InvalidInput):
        fetcher.fetch(url)
