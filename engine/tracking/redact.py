"""Keep secret values out of logs, MLflow params/artifacts and error text.

Two nets: values the secret resolver has handed out are remembered (for this process only) and
replaced wherever they appear, and values under secret-looking keys are masked regardless.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api_?key|private_?key|credential|aes_?key)$", re.I)
_REFERENCE = re.compile(r"^\$\{secret:[^}]*\}$")
_known: set[str] = set()
_lock = threading.Lock()


def remember(value: str) -> None:
    """Register a secret value so that :func:`redact_text` masks it. Short values are refused as
    masks because replacing every ``1`` in a log would be worse than useless."""
    if isinstance(value, str) and len(value) >= 4:
        with _lock:
            _known.add(value)


def forget_all() -> None:
    with _lock:
        _known.clear()


def redact_text(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.rsplit(".", 1)[-1]))


def redact_mapping(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Mask values of secret-looking keys (a ``${secret:name}`` reference is kept: it is not a secret)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        text = value if isinstance(value, str) else None
        if is_secret_key(key) and value not in (None, "") and not (text and _REFERENCE.match(text)):
            out[key] = MASK
        elif text is not None:
            out[key] = redact_text(text)
        else:
            out[key] = value
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that masks remembered secrets in every record, message and arguments alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            record.msg = redact_text(record.getMessage())
            record.args = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
