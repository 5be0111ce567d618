"""mmrag fsck: index entries without blobs and blobs without entries, found and repaired."""

from __future__ import annotations

import hashlib

from workers.shapes_scenes import held_out, png_of

from mmrag.retrieval.blobs import FilesystemBlobStore
from mmrag.retrieval.fsck import fsck
from mmrag.retrieval.items import IngestItem
from mmrag.services import Services


def test_orphans_both_ways_are_found_and_repaired(services: Services) -> None:
    pool = held_out(3)
    kept, broken = (
        services.ingest_for("acme", [IngestItem.upload(png_of(pool[i]), f"{i}.png")])
        .results[0]
        .image
        for i in (0, 1)
    )
    assert kept is not None
    assert broken is not None
    services.ingest_for("globex", [IngestItem.upload(png_of(pool[0]), "0.png")])
    blobs = services.blobs
    assert isinstance(blobs, FilesystemBlobStore)
    blobs.delete(broken.sha256, ("thumbnail",))  # a lost file: the entry lists a broken image
    stray = b"bytes whose upsert never came"
    stray_sha = hashlib.sha256(stray).hexdigest()
    blobs.put("original", stray_sha, stray)
    leftover = blobs.root / "original" / stray_sha[:2] / ".tmp-crashed"
    leftover.write_bytes(b"half")

    report = fsck(services.root_store, blobs)
    assert report.points == 3
    assert [(tenant, missing) for _, tenant, missing in report.entries_without_blobs] == [
        ("acme", "thumbnail")
    ]
    assert report.blobs_without_entries == [("original", stray_sha)]
    assert report.leftovers == [leftover]
    assert not report.clean
    assert services.root_store.count() == 3  # a check alone changes nothing

    repaired = fsck(services.root_store, blobs, repair=True)
    assert repaired.repaired
    assert fsck(services.root_store, blobs).clean
    assert services.root_store.count() == 2
    assert not blobs.exists("original", stray_sha)
    assert not leftover.exists()
    assert not blobs.exists("original", broken.sha256)
    # The shared image stays whole for both tenants that hold it.
    assert services.image(kept.image_id, "acme")["sha256"] == kept.sha256
    assert services.image(kept.image_id, "globex")["sha256"] == kept.sha256
    assert blobs.exists("thumbnail", kept.sha256)
