"""Fixtures of the retrieval tests: the service container on the tiny embedder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmrag.config import Settings
from mmrag.services import Services


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = Services.open(settings)
    try:
        yield opened
    finally:
        opened.close()
