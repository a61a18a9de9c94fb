"""Fixtures for the secrets tests: fresh keys, and a clean redaction state around every test."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pytest

from engine import redact


@pytest.fixture(autouse=True)
def _clean_redaction() -> Iterator[None]:
    """Remembered values, the log-record factory and stream wrappers are process-global: undo them."""
    factory = logging.getLogRecordFactory()
    streams = (sys.stdout, sys.stderr)
    yield
    redact.forget_all()
    logging.setLogRecordFactory(factory)
    sys.stdout, sys.stderr = streams


@pytest.fixture
def key_hex() -> str:
    return os.urandom(32).hex()


@pytest.fixture
def key(key_hex: str) -> str:
    return f"hex:{key_hex}"
