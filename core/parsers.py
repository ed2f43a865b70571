"""The REST JSON parser: bounded in size and in nesting depth, so hostile bodies are a 4xx and never a 500.

The size bound is Django's own DATA_UPLOAD_MAX_MEMORY_SIZE, enforced again here while reading (a chunked body
carries no Content-Length for Django to check first). The depth bound is far above any body the API accepts and far
below Python's recursion limit; the decoder is stopped by its own RecursionError before that.
"""

from __future__ import annotations

import codecs
import json
from typing import IO, Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from core.errors import JSONTooDeep, MalformedRequest, RequestTooLarge

MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply the lists and objects nest (a scalar is 0), walked without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth) for child in children)
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser with a byte limit and a nesting limit."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(limit_bytes=limit)
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError as exc:
            raise JSONTooDeep(max_depth=MAX_JSON_DEPTH) from exc
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise MalformedRequest(reason=str(exc)) from exc
        if json_depth(data) > MAX_JSON_DEPTH:
            raise JSONTooDeep(max_depth=MAX_JSON_DEPTH)
        return data
