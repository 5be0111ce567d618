"""A tenant's storage quota (``tenancy.max_images``, ``tenancy.max_bytes``), checked by every
ingest for a tenant (Services.ingest): API uploads, Slack files, bulk jobs alike."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.config import TenancySettings
from mmrag.errors import QuotaExceeded
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.store import VectorStore
from mmrag.tenancy.usage import usage_of


def known_bytes(items: Sequence[IngestItem]) -> int:
    """The bytes of the items whose size is known before they are read (uploads); a URL's,
    a path's or an archive member's count once it is stored, at the next ingest."""
    return sum(item.size or 0 for item in items)


class StorageQuota:
    def __init__(self, settings: TenancySettings, max_image_bytes: int) -> None:
        self.settings = settings
        self.max_image_bytes = max_image_bytes

    def admit(self, tenant: str, view: VectorStore, images: int, size: int) -> None:
        """Refuses (QuotaExceeded, a 413) ``images`` more images of ``size`` known bytes that
        would pass the tenant's quota, given what its ``view`` of the store holds."""
        held = view.count()  # an indexed count: cheap at any size
        if held + images > self.settings.max_images:
            raise QuotaExceeded(
                f"tenant {tenant!r} holds {held} images; {images} more would "
                f"pass its quota of {self.settings.max_images}"
            )
        # Bytes cost a scroll of the tenant's payloads (usage_of); skipped while even images
        # all at the size limit could not reach the quota.
        if (held + images) * self.max_image_bytes <= self.settings.max_bytes:
            return
        usage = usage_of(view)
        if usage.bytes + size > self.settings.max_bytes:
            raise QuotaExceeded(
                f"tenant {tenant!r} holds {usage.bytes} bytes; {size} more would pass "
                f"its quota of {self.settings.max_bytes}"
            )
