"""What ingest takes in and gives back: typed items, per-item results, the report.

Captions and metadata are checked here, so the API can refuse a bad request before any
work starts, with the same rules the pipeline applies per item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmrag.config import LimitSettings
from mmrag.errors import InvalidInput, MmragError, TooLarge
from mmrag.retrieval.json_bounds import check_json_value
from mmrag.retrieval.sources import ServerPaths, UrlFetcher

SourceKind = Literal["upload", "path", "url", "sample"]
ItemStatus = Literal["indexed", "duplicate", "failed"]

# Not a setting: captions beyond a handful add nothing to one text vector but cost.
MAX_CAPTIONS_PER_IMAGE = 16
# Top-level metadata keys, as search filters accept them (filters.MetadataKey uses it too):
# a key outside it could never be filtered on, and a dotted one would be a nested path in
# the store.
METADATA_KEY_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
_METADATA_KEY = re.compile(METADATA_KEY_PATTERN)
_MAX_FILENAME_CHARS = 255


@dataclass(frozen=True)
class IngestItem:
    """One image to ingest: where it comes from, how to get its bytes, what the user said.

    ``read`` runs in a worker thread and may raise any MmragError (ForbiddenSource,
    TooLarge, SourceUnreachable ...): that fails this item only.
    """

    kind: SourceKind
    uri: str
    read: Callable[[], bytes] = field(repr=False, compare=False)
    captions: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The bytes, where known before ``read`` (an upload): what a quota check counts.
    size: int | None = field(default=None, compare=False)

    @classmethod
    def upload(
        cls,
        data: bytes,
        filename: str,
        captions: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> IngestItem:
        return cls(
            "upload",
            upload_name(filename),
            lambda: data,
            _tuple(captions),
            metadata or {},
            len(data),
        )

    @classmethod
    def server_path(
        cls,
        paths: ServerPaths,
        path: str | Path,
        captions: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> IngestItem:
        return cls("path", str(path), lambda: paths.read(path), _tuple(captions), metadata or {})

    @classmethod
    def url(
        cls,
        fetcher: UrlFetcher,
        url: str,
        captions: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> IngestItem:
        return cls("url", url, lambda: fetcher.fetch(url), _tuple(captions), metadata or {})


def items_from_paths(
    paths: ServerPaths,
    targets: Sequence[str | Path],
    metadata: Mapping[str, Any] | None = None,
    captions: Sequence[str] = (),
) -> list[IngestItem]:
    """One item per image file under each target (a file or a directory walked recursively).

    Raises ForbiddenSource or NotFound for a target itself; links inside a directory that
    lead outside the roots become items that fail, so the report names them.
    """
    return [
        IngestItem.server_path(paths, file, captions, metadata)
        for target in targets
        for file in paths.list_files(target)
    ]


def _tuple(captions: Sequence[str]) -> tuple[str, ...]:
    # A lone string is a Sequence[str] too: one caption, not one per character.
    return (captions,) if isinstance(captions, str) else tuple(captions)


def upload_name(filename: str) -> str:
    """The last component of a client's file name, printable and bounded."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable())
    return name[:_MAX_FILENAME_CHARS] or "upload"


def clean_captions(captions: Sequence[str], limits: LimitSettings) -> list[str]:
    """Stripped, non-empty captions within the limits, or InvalidInput/TooLarge."""
    cleaned = [caption.strip() for caption in captions if caption and caption.strip()]
    if len(cleaned) > MAX_CAPTIONS_PER_IMAGE:
        raise TooLarge(f"more than {MAX_CAPTIONS_PER_IMAGE} captions for one image")
    for caption in cleaned:
        if len(caption) > limits.max_caption_chars:
            raise TooLarge(
                f"a caption has {len(caption)} characters, over the limit of "
                f"{limits.max_caption_chars}"
            )
    return cleaned


def clean_metadata(metadata: Mapping[str, Any], limits: LimitSettings) -> dict[str, Any]:
    """A plain JSON object within ``max_metadata_bytes`` whose top-level keys match
    :data:`METADATA_KEY_PATTERN`, or InvalidInput/TooLarge."""
    if not isinstance(metadata, Mapping):
        raise InvalidInput("metadata must be a JSON object")
    if any(not isinstance(key, str) for key in metadata):
        raise InvalidInput("metadata keys must be strings")
    for key in metadata:
        if not _METADATA_KEY.fullmatch(key):  # fullmatch: "$" alone lets "key\n" through
            shown = repr(key[:64]) + ("..." if len(key) > 64 else "")
            rule = "1 to 64 ASCII letters, digits, '_' or '-'"
            raise InvalidInput(f"metadata key {shown} is not allowed: keys are {rule}")
    # Before json.dumps, which recurses per level; the store holds 64-bit integers only.
    check_json_value(metadata, limits.max_json_depth, "metadata")
    try:
        encoded = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"metadata is not plain JSON: {error}") from error
    size = len(encoded.encode())
    if size > limits.max_metadata_bytes:
        raise TooLarge(
            f"metadata is {size} bytes of JSON, over the limit of {limits.max_metadata_bytes}"
        )
    # The round trip leaves only JSON types (tuples become lists ...), as a store keeps them.
    plain: dict[str, Any] = json.loads(encoded)
    return plain


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """The facts the API returns for an image, indexed now or found already indexed."""

    image_id: str
    sha256: str
    width: int
    height: int
    format: str
    byte_size: int
    created: str  # UTC, ISO 8601

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ImageInfo:
        return cls(
            image_id=str(payload["id"]),
            sha256=str(payload["sha256"]),
            width=int(payload["width"]),
            height=int(payload["height"]),
            format=str(payload["format"]),
            byte_size=int(payload["bytes"]),
            created=str(payload["created"]),
        )


@dataclass(frozen=True)
class ItemResult:
    """What became of one input item; ``image`` is set unless it failed."""

    kind: SourceKind
    source: str
    status: ItemStatus
    image: ImageInfo | None = None
    error: MmragError | None = None

    @property
    def reason(self) -> str:
        return self.error.detail if self.error is not None else ""


# (done, total): called after each item is settled, for a progress bar or job progress.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestReport:
    """Every item's result, in input order."""

    results: list[ItemResult]
    elapsed_s: float

    @property
    def indexed(self) -> list[str]:
        return [_id(result) for result in self.results if result.status == "indexed"]

    @property
    def duplicates(self) -> list[str]:
        return [_id(result) for result in self.results if result.status == "duplicate"]

    @property
    def failed(self) -> list[tuple[str, str]]:
        """``(source, reason)`` of each item that failed."""
        return [(r.source, r.reason) for r in self.results if r.status == "failed"]


def _id(result: ItemResult) -> str:
    assert result.image is not None
    return result.image.image_id
