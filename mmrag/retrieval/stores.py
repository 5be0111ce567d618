"""Pick the vector store backend the settings name."""

from __future__ import annotations

from mmrag.config import Settings, StoreBackend
from mmrag.retrieval.store import VectorStore


def open_store(settings: Settings) -> VectorStore:
    """The configured store; the caller calls ``ensure_collection(dim)`` once the dim is known.

    Embedded: the shard lives in ``settings.store_dir / settings.store.collection``.
    """
    # Imported here so that a process using one backend never loads the other's client.
    if settings.store.backend is StoreBackend.EDGE:
        from mmrag.retrieval.store_edge import EdgeVectorStore

        return EdgeVectorStore(settings.store_dir, settings.store)
    from mmrag.retrieval.store_qdrant import QdrantServerStore

    return QdrantServerStore(settings.store)
