"""Fixtures for the API tests: a live server on the test's settings."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api.live_server import LiveServer

from mmrag.config import Settings


@pytest.fixture
def live_api(settings: Settings) -> Iterator[httpx.Client]:
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
