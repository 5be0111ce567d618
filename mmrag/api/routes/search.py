"""``POST /v1/search``: text to image, image to image, text or image to caption, hybrid."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from mmrag.api.deps import TenantServicesDep
from mmrag.api.limits import SearchRate
from mmrag.api.openapi import BODY_PROBLEMS, V1_PROBLEMS, problems
from mmrag.api.schemas import SearchRequest, SearchResponse, SearchResult
from mmrag.api.security import CanRead
from mmrag.errors import InvalidInput, TooLarge
from mmrag.retrieval.search import SearchQuery
from mmrag.retrieval.store import Filter

router = APIRouter(prefix="/v1/search", tags=["search"], responses=V1_PROBLEMS)


@router.post(
    "", response_model=SearchResponse, responses={**BODY_PROBLEMS, **problems(404, 415, 429)}
)
async def search(
    body: SearchRequest, services: TenantServicesDep, _: CanRead, __: SearchRate
) -> SearchResponse:
    image = None
    if body.image_b64 is not None:
        limit = services.settings.limits.max_image_bytes
        if len(body.image_b64) > limit * 4 // 3 + 4:
            raise TooLarge(f"image_b64 decodes to more than {limit} bytes")
        try:
            raw = base64.b64decode(body.image_b64, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidInput("image_b64 is not valid base64") from error
        image = await run_in_threadpool(services.decode_query_image, raw)
    query = SearchQuery(
        text=body.text,
        image_id=body.image_id,
        image=image,
        target=body.target,
        limit=body.limit,
        offset=body.offset,
        filter=body.filter.to_store_filter() if body.filter else Filter(),
    )
    found = await run_in_threadpool(services.search.search, query)
    return SearchResponse(
        results=[SearchResult.from_hit(hit) for hit in found.hits],
        target=body.target,
        limit=body.limit,
        offset=body.offset,
        took_ms=round(found.encode_ms + found.search_ms, 3),
        encode_ms=round(found.encode_ms, 3),
    )
