"""BM25 term weights for captions, computed here and scored by the engine.

Qdrant's ``IDF`` modifier on the sparse vector supplies the corpus statistics, so a document
vector only carries its own saturated term frequencies. The same encoder serves both
backends, which keeps their scores comparable.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from qdrant_edge import Bm25, Bm25Config

from mmrag.retrieval.store import SparseVector

# Captions are short: a sentence or two, not the 256-token web page BM25 defaults assume.
_CAPTION_AVG_TOKENS = 16.0

_local = threading.local()


def _model() -> Bm25:
    model: Bm25 | None = getattr(_local, "model", None)
    if model is None:
        model = Bm25(Bm25Config(avg_len=_CAPTION_AVG_TOKENS, language="english"))
        _local.model = model
    return model


def encode_document(captions: Sequence[str]) -> SparseVector:
    """The sparse vector of an image's captions, joined as one document."""
    vector = _model().embed_document("\n".join(captions))
    return SparseVector(list(vector.indices), list(vector.values))


def encode_query(text: str) -> SparseVector:
    vector = _model().embed_query(text)
    return SparseVector(list(vector.indices), list(vector.values))
