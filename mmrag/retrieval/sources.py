"""Where image bytes come from: files under the allowed roots, and http(s) URLs.

Both read at most ``limits.max_image_bytes`` (plus one byte to tell "over"), so nothing
past the limit is ever held in memory.

Server paths are resolved (symlinks and ``..``) before they are checked against
``Settings.allowed_roots``, and checked again when a file is opened. URLs are resolved
once, checked against an :class:`~mmrag.retrieval.addresses.AddressPolicy`, and fetched
from exactly the address that was checked (no second DNS lookup to rebind); every redirect
hop is checked the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import httpx

from mmrag.config import LimitSettings
from mmrag.errors import (
    ForbiddenSource,
    InvalidInput,
    NotFound,
    SourceUnreachable,
    TooLarge,
    UnsupportedMedia,
)
from mmrag.retrieval.addresses import AddressPolicy, IPAddress, Resolver, system_resolver
from mmrag.retrieval.decode import check_byte_size

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif"}
)

_MAX_URL_CHARS = 2048
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


# -- server paths --------------------------------------------------------------------------


class ServerPaths:
    """Files the server may read: only under the allowed roots, after resolving links."""

    def __init__(self, roots: Sequence[Path], limits: LimitSettings) -> None:
        self.roots = [root.resolve() for root in roots]
        self.limits = limits

    def resolve(self, path: str | Path) -> Path:
        """The real path, if it exists and lies under an allowed root."""
        given = Path(path)
        if not given.is_absolute():
            raise InvalidInput(f"server paths must be absolute: {str(path)!r}")
        try:
            real = given.resolve(strict=True)
        except FileNotFoundError as error:
            raise NotFound(f"no such file or directory: {given}") from error
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
            raise ForbiddenSource(f"cannot resolve {given}: {error}") from error
        except ValueError as error:  # a NUL byte in the path
            raise InvalidInput(f"not a valid path: {str(path)[:200]!r}") from error
        if not self._allowed(real):
            raise ForbiddenSource(f"{given} resolves outside the allowed roots")
        return real

    def list_files(self, path: str | Path) -> list[Path]:
        """The image files at ``path``: itself, or a directory walked recursively.

        Order is deterministic (names sorted at every level). Paths are returned as walked,
        not resolved, so reports name what the caller recognises. A symlink that leads
        outside the roots is listed anyway: reading it raises ForbiddenSource, which
        reports the refusal per file instead of hiding it. Hidden entries (dot names) are
        skipped: they are editor and OS litter (``._IMG.jpg``), not photos.
        """
        top = self.resolve(path)
        if not top.is_dir():
            return [Path(path)]
        found: list[Path] = []
        self._walk(Path(path), top, {top}, found)
        return found

    def read(self, path: str | Path) -> bytes:
        """The file's bytes; the opened file itself is checked, not only its name."""
        real = self.resolve(path)
        # O_NOFOLLOW: the last component cannot have become a symlink since resolve();
        # O_NONBLOCK: opening a FIFO must not hang (it is refused below as not a file).
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            descriptor = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise ForbiddenSource(f"cannot open {path}: {error.strerror}") from error
        with os.fdopen(descriptor, "rb") as handle:
            self._check_opened(descriptor, path)
            return self._read_bounded(handle, path)

    # -- internals -------------------------------------------------------------------------

    def _allowed(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def _walk(self, shown: Path, real: Path, visited: set[Path], found: list[Path]) -> None:
        try:
            entries = sorted(os.scandir(real), key=lambda entry: entry.name)
        except OSError as error:
            log.warning("cannot list %s: %s", shown, error)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            entry_shown = shown / entry.name
            if entry.is_symlink():
                self._walk_link(entry_shown, Path(entry.path), visited, found)
            elif entry.is_dir(follow_symlinks=False):
                self._walk(entry_shown, Path(entry.path), visited, found)
            elif entry.is_file(follow_symlinks=False) and _is_image_name(entry.name):
                found.append(entry_shown)

    def _walk_link(self, shown: Path, link: Path, visited: set[Path], found: list[Path]) -> None:
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            log.warning("skipping broken symlink %s", shown)
            return
        if not self._allowed(target):
            found.append(shown)  # read() refuses it, and the report says why
        elif target.is_dir():
            if target not in visited:  # a link back up the tree would loop forever
                visited.add(target)
                self._walk(shown, target, visited, found)
        elif _is_image_name(shown.name):
            found.append(shown)

    def _check_opened(self, descriptor: int, shown: str | Path) -> None:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise UnsupportedMedia(f"{shown} is not a regular file")
        check_byte_size(info.st_size, self.limits)
        # A directory above the file could have been swapped for a symlink between
        # resolve() and open(); on Linux the descriptor knows where it really points.
        proc_link = Path(f"/proc/self/fd/{descriptor}")
        if proc_link.is_symlink():
            opened = Path(os.readlink(proc_link))
            if not self._allowed(opened):
                raise ForbiddenSource(f"{shown} resolves outside the allowed roots")

    def _read_bounded(self, handle: BinaryIO, shown: str | Path) -> bytes:
        data = handle.read(self.limits.max_image_bytes + 1)
        if len(data) > self.limits.max_image_bytes:
            raise TooLarge(f"{shown} is over the limit of {self.limits.max_image_bytes} bytes")
        return data


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


# -- URLs ----------------------------------------------------------------------------------


class UrlFetcher:
    """Fetches images from http(s) URLs without letting a URL reach a private network.

    ``transport`` replaces httpx's network transport (tests); ``resolver`` replaces DNS.
    Thread-safe; close it (or use it as a context manager) to release connections.
    """

    def __init__(
        self,
        limits: LimitSettings,
        policy: AddressPolicy | None = None,
        resolver: Resolver = system_resolver,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.limits = limits
        self.policy = policy or AddressPolicy()
        self.resolver = resolver
        # trust_env=False: a proxy from the environment would make the connection to an
        # address we never checked. Redirects are followed by hand, one checked hop at a time.
        self._client = httpx.Client(
            trust_env=False,
            follow_redirects=False,
            transport=transport,
            headers={"Accept": "image/*", "Accept-Encoding": "identity"},
        )

    def fetch(self, url: str) -> bytes:
        """The body of ``url``; raises ForbiddenSource, TooLarge, SourceUnreachable or
        InvalidInput."""
        deadline = time.monotonic() + self.limits.url_timeout_s
        current = parse_url(url)
        for _hop in range(self.limits.url_max_redirects + 1):
            try:
                outcome = self._get(current, deadline)
            except httpx.TimeoutException as error:
                raise SourceUnreachable(
                    f"{url}: no answer within {self.limits.url_timeout_s:g} s"
                ) from error
            except httpx.HTTPError as error:
                raise SourceUnreachable(f"{url}: {type(error).__name__}: {error}") from error
            if isinstance(outcome, bytes):
                return outcome
            current = parse_url(str(current.join(outcome)))
        raise SourceUnreachable(f"{url}: more than {self.limits.url_max_redirects} redirects")

    def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> int:
        """POST ``content`` to ``url`` under the same address checks (a notification: no
        redirect is followed); the status code. Raises as :meth:`fetch` does."""
        deadline = time.monotonic() + self.limits.url_timeout_s
        parsed = parse_url(url)
        addresses = self._checked_addresses(parsed)
        try:
            for attempt, address in enumerate(addresses, start=1):
                try:
                    request = self._request("POST", parsed, address, deadline, content, headers)
                    return self._client.send(request).status_code
                except httpx.ConnectError:
                    if attempt == len(addresses):
                        raise
        except httpx.TimeoutException as error:
            raise SourceUnreachable(
                f"{url}: no answer within {self.limits.url_timeout_s:g} s"
            ) from error
        except httpx.HTTPError as error:
            raise SourceUnreachable(f"{url}: {type(error).__name__}: {error}") from error
        raise AssertionError("unreachable: a checked host has at least one address")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> UrlFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _get(self, url: httpx.URL, deadline: float) -> bytes | str:
        """One hop: the body, or the Location of a redirect.

        Tries the host's checked addresses in order (an IPv6 address first is common, and
        useless where the network has no IPv6); never any address that was not checked.
        """
        addresses = self._checked_addresses(url)
        for attempt, address in enumerate(addresses, start=1):
            try:
                return self._get_from(url, address, deadline)
            except httpx.ConnectError:
                if attempt == len(addresses):
                    raise
        raise AssertionError("unreachable: a checked host has at least one address")

    def _get_from(self, url: httpx.URL, address: IPAddress, deadline: float) -> bytes | str:
        request = self._request("GET", url, address, deadline)
        response = self._client.send(request, stream=True)
        try:
            if response.status_code in _REDIRECT_CODES:
                location: str | None = response.headers.get("location")
                if not location:
                    raise SourceUnreachable(f"{url}: redirect without a Location")
                return location
            if response.status_code != 200:
                raise SourceUnreachable(f"{url} answered HTTP {response.status_code}")
            return self._read_body(url, response, deadline)
        finally:
            response.close()

    def _request(
        self,
        method: str,
        url: httpx.URL,
        address: IPAddress,
        deadline: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A request to ``url`` dialled at its checked ``address``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline passed")
        extensions: dict[str, str] = {}
        if url.scheme == "https":
            # Certificate and SNI still name the host, though we dial its checked address.
            extensions["sni_hostname"] = _ascii_host(url)
        return self._client.build_request(
            method,
            url.copy_with(host=str(address)),
            headers={**(headers or {}), "Host": url.netloc.decode("ascii")},
            content=content,
            timeout=httpx.Timeout(remaining),
            extensions=extensions,
        )

    def _checked_addresses(self, url: httpx.URL) -> list[IPAddress]:
        host = _ascii_host(url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:  # a name, not an address literal
            addresses = self.resolver(host, port)
        return self.policy.check(host, addresses)

    def _read_body(self, url: httpx.URL, response: httpx.Response, deadline: float) -> bytes:
        limit = self.limits.max_image_bytes
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"{url} is {declared} bytes, over the limit of {limit}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # Decompressing would let a small body grow past the byte limit unseen.
            raise UnsupportedMedia(f"{url}: compressed transfer ({encoding}) is not accepted")
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > limit:
                raise TooLarge(f"{url} is over the limit of {limit} bytes")
            if time.monotonic() > deadline:
                raise httpx.TimeoutException("deadline passed while reading")
        return bytes(body)


def parse_url(url: str) -> httpx.URL:
    """An absolute http(s) URL with a host and no credentials, or InvalidInput."""
    if len(url) > _MAX_URL_CHARS:
        raise InvalidInput(f"URL longer than {_MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise InvalidInput(f"not a valid URL: {url[:200]!r}") from error
    if not parsed.scheme:
        raise InvalidInput(f"not an absolute URL: {url[:200]!r}")
    if parsed.scheme not in ("http", "https"):
        raise ForbiddenSource(f"only http and https URLs are fetched, not {parsed.scheme!r}")
    if not parsed.host:
        raise InvalidInput(f"URL without a host: {url[:200]!r}")
    if parsed.userinfo:
        raise InvalidInput("URLs with credentials are not accepted")
    return parsed


def _ascii_host(url: httpx.URL) -> str:
    """The host as DNS and TLS see it (IDNA-encoded, IPv6 without brackets)."""
    return url.raw_host.decode("ascii")
