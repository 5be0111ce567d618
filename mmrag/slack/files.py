"""Files shared in Slack, downloaded with the bot token from Slack's own file hosts only.

The token goes only to the hosts in ``MMRAG_SLACK__FILE_HOSTS``: a file URL elsewhere, or a
redirect that leaves them, is refused before anything is sent there. The size Slack declares,
the Content-Length and the bytes actually read are each checked against the limit, so a large
file is never held whole. Decoding is left to ingest, which decodes like any upload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from mmrag.errors import ForbiddenSource, InvalidInput, SourceUnreachable, TooLarge

_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 3


@dataclass(frozen=True)
class SlackFile:
    """What an event says about one shared file (never its bytes)."""

    file_id: str
    name: str
    url: str
    size: int | None
    mimetype: str

    @classmethod
    def from_event(cls, shared: Mapping[str, Any]) -> SlackFile:
        url = shared.get("url_private_download") or shared.get("url_private")
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"file {shared.get('id', '?')} has no download URL")
        size = shared.get("size")
        return cls(
            file_id=str(shared.get("id", "")),
            name=str(shared.get("name") or shared.get("title") or "slack-file"),
            url=url,
            size=size if isinstance(size, int) else None,
            mimetype=str(shared.get("mimetype", "")),
        )

    @property
    def is_image(self) -> bool:
        return self.mimetype.startswith("image/")

    @staticmethod
    def is_image_entry(shared: Mapping[str, Any]) -> bool:
        return str(shared.get("mimetype", "")).startswith("image/")


class SlackFiles:
    """Downloads shared files. ``schemes`` is ``("https",)`` against Slack; tests that play
    Slack over plain HTTP on loopback add ``"http"``."""

    def __init__(
        self,
        hosts: Sequence[str],
        max_bytes: int,
        timeout_s: float,
        schemes: Sequence[str] = ("https",),
    ) -> None:
        self._hosts = {host.lower() for host in hosts}
        self._schemes = set(schemes)
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    def download(self, shared: SlackFile, token: str) -> bytes:
        if shared.size is not None and shared.size > self._max_bytes:
            raise TooLarge(f"{shared.name} is {shared.size} bytes, over {self._max_bytes}")
        url = self._checked(shared.url, shared.name)
        # trust_env=False: a proxy from the environment would see the token.
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=self._timeout_s) as http:
            for _hop in range(_MAX_REDIRECTS + 1):
                try:
                    outcome = self._get(http, url, token, shared.name)
                except httpx.HTTPError as error:
                    raise SourceUnreachable(f"{shared.name}: {type(error).__name__}") from None
                if isinstance(outcome, bytes):
                    return outcome
                url = self._checked(str(url.join(outcome)), shared.name)
        raise SourceUnreachable(f"{shared.name}: more than {_MAX_REDIRECTS} redirects")

    def _checked(self, raw: str, name: str) -> httpx.URL:
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL:
            raise InvalidInput(f"{name}: not a URL") from None
        if url.scheme not in self._schemes or url.host.lower() not in self._hosts:
            # Only the host is named: a URL's path and query may carry secrets of their own.
            raise ForbiddenSource(f"{name}: {url.host or 'no host'} is not one of Slack's hosts")
        return url

    def _get(self, http: httpx.Client, url: httpx.URL, token: str, name: str) -> bytes | str:
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
        with http.stream("GET", url, headers=headers) as response:
            if response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise SourceUnreachable(f"{name}: redirect without a Location")
                return str(location)
            if response.status_code != 200:
                raise SourceUnreachable(f"{name}: Slack answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise TooLarge(f"{name} is {declared} bytes, over {self._max_bytes}")
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise TooLarge(f"{name} is over {self._max_bytes} bytes")
            return bytes(body)
