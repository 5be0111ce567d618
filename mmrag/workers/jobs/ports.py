"""What bulk jobs need of the service layer, as a protocol.

The job machinery runs under every surface (the API, ``mmrag annotate``, the Slack bot), so it
must not import the service layer that those surfaces build on; :class:`mmrag.services.Services`
meets this protocol as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mmrag.config import Settings
from mmrag.retrieval.items import IngestItem, IngestReport, ProgressCallback
from mmrag.retrieval.regions import RegionIndexer
from mmrag.retrieval.sources import UrlFetcher
from mmrag.retrieval.store import VectorStore
from mmrag.workers.client import ToolClient


class JobServices(Protocol):
    settings: Settings
    store: VectorStore
    tools: ToolClient
    regions: RegionIndexer

    def ingest(
        self, items: Sequence[IngestItem], progress: ProgressCallback | None = None
    ) -> IngestReport: ...

    def url_fetcher(self) -> UrlFetcher: ...

    def scoped(self, tenant: str) -> JobServices:
        """The same services on ``tenant``'s view of the store."""
        ...
