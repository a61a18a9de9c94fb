"""Backoff and Retry-After as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.mt5.retry import RetryPolicy, backoff_delay, parse_retry_after, retry_wait


def test_backoff_doubles_until_the_cap_without_jitter() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0, jitter=0.0)
    assert [backoff_delay(n, policy) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff_delay(10_000, policy) == 1.0  # no overflow for absurd attempt numbers


@given(attempt=st.integers(0, 80), jitter=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_jittered_backoff_stays_within_its_band(attempt: int, jitter: float, seed: int) -> None:
    policy = RetryPolicy(base=0.05, cap=2.0, jitter=jitter)
    full = min(2.0, 0.05 * 2 ** min(attempt, 62))
    delay = backoff_delay(attempt, policy, random.Random(seed))
    assert full * (1 - jitter) - 1e-12 <= delay <= full + 1e-12


def test_jitter_spreads_clients_apart_and_is_seeded() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=1.0)
    a = [backoff_delay(3, policy, random.Random(s)) for s in range(20)]
    assert len(set(a)) == 20
    assert a == [backoff_delay(3, policy, random.Random(s)) for s in range(20)]


def test_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    for bad in (None, "", "soon", "-5"):
        assert parse_retry_after(bad) is None


def test_server_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0, jitter=0.0, max_retry_after=5.0)
    assert retry_wait(0, policy, 3.0) == 3.0
    assert retry_wait(0, policy, 600.0) == 5.0
    assert retry_wait(2, policy, None) == 0.4


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2.0)
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, RetryPolicy())
