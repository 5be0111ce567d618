"""Reading uploaded files within a byte limit."""

from __future__ import annotations

from starlette.datastructures import UploadFile

from mmrag.errors import TooLarge

_READ_CHUNK = 1024 * 1024


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refused as soon as they pass ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{upload.filename or 'an upload'} is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
