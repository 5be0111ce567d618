"""Retrieval: the vector store, ingest, search and the blob store."""
