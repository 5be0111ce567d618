"""Pick the vector store backend the settings name."""

from __future__ import annotations

from mmrag.config import Settings, StoreBackend
from mmrag.retrieval.aliases import physical_collection
from mmrag.retrieval.store import VectorStore


def open_store(settings: Settings) -> VectorStore:
    """The configured store; the caller calls ``ensure_collection(dim)`` once the dim is known.

    Embedded: the shard lives in ``settings.store_dir / settings.store.collection``.
    """
    # The version of the collection its name points at (retrieval/aliases.py).
    physical = physical_collection(settings.data_dir, settings.store.collection)
    if physical != settings.store.collection:
        store = settings.store.model_copy(update={"collection": physical})
        settings = settings.model_copy(update={"store": store})
    # Imported here so that a process using one backend never loads the other's client.
    if settings.store.backend is StoreBackend.EDGE:
        from mmrag.retrieval.store_edge import EdgeVectorStore

        return EdgeVectorStore(settings.store_dir, settings.store)
    from mmrag.retrieval.store_qdrant import QdrantServerStore

    return QdrantServerStore(settings.store)


def drop_collection(settings: Settings, collection: str) -> None:
    """Delete a collection version a re-index retired (closed by then)."""
    if settings.store.backend is StoreBackend.EDGE:
        import shutil

        shutil.rmtree(settings.store_dir / collection, ignore_errors=True)
        return
    from qdrant_client import QdrantClient

    from mmrag.retrieval.store_qdrant import MEMORY

    if settings.store.url == MEMORY:
        return  # local mode: the collection went with its store's client
    key = settings.store.api_key.get_secret_value() if settings.store.api_key else None
    client = QdrantClient(url=settings.store.url, api_key=key, check_compatibility=False)
    try:
        client.delete_collection(collection)
    finally:
        client.close()
