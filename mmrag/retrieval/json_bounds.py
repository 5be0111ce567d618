"""Bounds on JSON a caller sends, checked before anything parses it deeply or stores it.

Python's ``json`` and Pydantic recurse per nesting level, so a body nested 100,000 levels
deep raises RecursionError (a 500) instead of a clear refusal. :func:`check_json_text` finds
the depth with a flat scan (no recursion) before any parser runs; :func:`check_json_value`
walks an already parsed value the same way, and also refuses integers the store cannot hold
(Qdrant keeps payload integers as signed 64-bit).
"""

from __future__ import annotations

import re
from typing import Any

from mmrag.errors import InvalidInput, TooLarge

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Strings first, so brackets inside them are skipped; escapes are consumed whole.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def check_json_text(
    raw: bytes | str, max_depth: int, max_bytes: int, what: str = "the body"
) -> None:
    """TooLarge past ``max_bytes``; InvalidInput when arrays and objects nest deeper than
    ``max_depth``. Malformed JSON is left to the parser, which says what is wrong."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > max_bytes:
        raise TooLarge(f"{what} is {size} bytes of JSON, over the limit of {max_bytes}")
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidInput(f"{what} nests deeper than {max_depth} levels")
        elif token in "]}":
            depth -= 1


def check_json_value(value: Any, max_depth: int, what: str = "the value") -> None:
    """InvalidInput for a parsed value nested deeper than ``max_depth`` or holding an
    integer outside signed 64-bit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                raise InvalidInput(f"{what} nests deeper than {max_depth} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool):
            check_int64(item, what)


def check_int64(value: int, what: str = "a number") -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{what} holds the integer {_short(value)}, outside signed 64-bit")
    return value


def _short(value: int) -> str:
    # str() of a huge integer is refused past 4,300 digits (and slow well before): its size
    # in bits says enough.
    return str(value) if value.bit_length() <= 80 else f"of {value.bit_length()} bits"
