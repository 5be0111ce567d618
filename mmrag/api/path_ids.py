"""Ids in URL paths: 32 hex digits, matched by the router itself.

With a plain ``{image_id}`` the route ``GET /v1/images/{image_id}`` would take
``GET /v1/images/from-paths`` and answer 422 about the id; matched by the router, that
request finds the POST-only route and gets 405, and a malformed id is simply no such
resource (404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor

HEX_ID_PATTERN = r"^[0-9a-f]{32}$"
# The convertor's name in route paths: "/{image_id:hex32}".
HEX_ID = "hex32"


class _HexId(Convertor[str]):
    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(HEX_ID, _HexId())

# The parameter as the OpenAPI document states it.
HexIdPath = Annotated[str, Path(pattern=HEX_ID_PATTERN, description="32 hex digits")]
