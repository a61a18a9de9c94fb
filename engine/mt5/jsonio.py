"""JSON on the wire: orjson when installed (bar payloads are large), the standard library otherwise."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None


def dumps(obj: Any) -> bytes:
    if _orjson is not None:
        return _orjson.dumps(obj)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON; ValueError on malformed input (orjson's error derives from it)."""
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)
