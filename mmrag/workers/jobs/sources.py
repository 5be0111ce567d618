"""A job's source as items: listed once at submit time, read one item at a time later.

Reuses the ingest sources: :class:`ServerPaths` (allowed roots, symlink checks),
:class:`UrlFetcher` (private-address refusal on every hop), and the archive checks. What
is wrong with the source as a whole is refused at submit; what is wrong with one image
(a URL that redirects to a private address, a member that is not an image) fails that item.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.config import Settings
from mmrag.errors import InvalidInput, NotFound, TooLarge
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.sources import ServerPaths, UrlFetcher, parse_url
from mmrag.retrieval.store import VectorStore
from mmrag.workers.jobs.archive import archive_members, read_member
from mmrag.workers.jobs.spec import (
    MAX_JOB_ITEMS,
    ArchiveSource,
    IndexedSource,
    JobSource,
    PathsSource,
    UrlsSource,
)


def check_webhook(url: str | None) -> None:
    """A webhook must be an absolute http(s) URL; where it points is checked on sending."""
    if url is not None:
        parse_url(url)


def list_keys(source: JobSource, settings: Settings, store: VectorStore) -> list[str]:
    """One key per item of the job, in order; raises when the source as a whole is bad."""
    match source:
        case PathsSource(paths=paths):
            server = ServerPaths(settings.allowed_roots, settings.limits)
            keys = [str(file) for path in paths for file in server.list_files(path)]
        case UrlsSource(urls=urls):
            for url in urls:
                parse_url(url)  # malformed, not http(s), credentials: refused now
            keys = list(dict.fromkeys(urls))
        case IndexedSource(ids=list() as ids):
            held = store.existing(ids)
            missing = [image_id for image_id in ids if image_id not in held]
            if missing:
                raise NotFound(f"no image with id {missing[0]}")
            keys = list(dict.fromkeys(ids))
        case IndexedSource(filter=search_filter):
            condition = search_filter.to_store_filter() if search_filter else None
            keys = []
            for hit in store.scroll(condition):
                keys.append(hit.image_id)
                if len(keys) > MAX_JOB_ITEMS:
                    break
        case ArchiveSource(path=path):
            keys = archive_members(Path(path), settings)
    if not keys:
        raise InvalidInput("the source holds no images")
    if len(keys) > MAX_JOB_ITEMS:
        raise TooLarge(f"over {MAX_JOB_ITEMS} images in one job: split it into several")
    return keys


def ingest_item(source: JobSource, key: str, settings: Settings, fetcher: UrlFetcher) -> IngestItem:
    """The ingest item behind ``key`` (not for indexed sources: those are in the index)."""
    match source:
        case PathsSource():
            return IngestItem.server_path(ServerPaths(settings.allowed_roots, settings.limits), key)
        case UrlsSource():
            return IngestItem.url(fetcher, key)
        case ArchiveSource(path=path):
            limit = settings.limits.max_image_bytes
            return IngestItem("upload", key, lambda: read_member(Path(path), key, limit))
    raise AssertionError(f"{source.kind} items are not ingested")
