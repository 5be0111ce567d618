"""``mmrag fsck``: the index and the blob store agree, both ways.

- an index entry (a point of any tenant) whose original or thumbnail is missing: after a
  crash or a lost file, it would list an image that cannot be shown; repair deletes the point
  (the image can be uploaded again);
- a blob no point holds: a crash between writing the blobs and upserting the point, or a
  delete cut short; repair deletes it;
- temporary files a crash left mid-write; repair deletes them.

Run it with the service stopped: the embedded store's shard is open in one process only, and
a running ingest's fresh blobs would look orphaned for the moment before their upsert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmrag.retrieval.blobs import BLOB_KINDS, BlobKind, FilesystemBlobStore
from mmrag.retrieval.store import VectorStore


@dataclass
class FsckReport:
    points: int = 0
    blobs: int = 0
    # (point key, tenant or "default", what is missing)
    entries_without_blobs: list[tuple[str, str, str]] = field(default_factory=list)
    broken_sha256: set[str] = field(default_factory=set)  # the blobs those entries have left
    blobs_without_entries: list[tuple[BlobKind, str]] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (self.entries_without_blobs or self.blobs_without_entries or self.leftovers)


def fsck(store: VectorStore, blobs: FilesystemBlobStore, repair: bool = False) -> FsckReport:
    report = FsckReport()
    held: set[str] = set()
    for hit in store.scroll():
        report.points += 1
        sha256 = str(hit.payload.get("sha256", ""))
        held.add(sha256)
        missing = [kind for kind in BLOB_KINDS if not sha256 or not blobs.exists(kind, sha256)]
        if missing:
            tenant = str(hit.payload.get("tenant", "default"))
            report.entries_without_blobs.append((hit.image_id, tenant, "+".join(missing)))
            report.broken_sha256.add(sha256)
    for kind in BLOB_KINDS:
        for sha256 in blobs.keys(kind):
            report.blobs += 1
            if sha256 not in held:
                report.blobs_without_entries.append((kind, sha256))
    report.leftovers = blobs.leftovers()
    if repair and not report.clean:
        # Keys as stored (hits of the whole store carry the point's own key).
        store.delete([key for key, _, _ in report.entries_without_blobs])
        for kind, sha256 in report.blobs_without_entries:
            blobs.delete(sha256, (kind,))
        # Every point of a broken content is broken alike (same blobs): what is left of them
        # is held by nothing now.
        for sha256 in report.broken_sha256 - {""}:
            blobs.delete(sha256)
        for path in report.leftovers:
            path.unlink(missing_ok=True)
        report.repaired = True
    return report
