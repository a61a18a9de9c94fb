"""Backoff as pure functions: which delay before retry ``n``, and what a Retry-After header asks for."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after the first; delays grow ``base * 2**n`` up to ``cap`` seconds.

    Jitter is "full jitter" scaled by ``jitter`` (0 = none, 1 = uniform in [0, delay]) so that many
    clients hitting the same bridge after an outage do not retry in lockstep.
    """

    retries: int = 3
    base: float = 0.2
    cap: float = 5.0
    jitter: float = 1.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy needs retries >= 0, base >= 0, cap >= 0, 0 <= jitter <= 1, "
                             "max_retry_after >= 0")


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # min() before the power would overflow float for large attempts.
    full = min(policy.cap, policy.base * (2 ** min(attempt, 62)))
    if policy.jitter == 0:
        return full
    u = (rng or random).random()
    return full * (1 - policy.jitter) + full * policy.jitter * u


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP Retry-After header (delta-seconds or HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_wait(attempt: int, policy: RetryPolicy, retry_after: float | None,
               rng: random.Random | None = None) -> float:
    """The wait before retry ``attempt``: the server's Retry-After (capped) wins over our own backoff."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), policy.max_retry_after)
    return backoff_delay(attempt, policy, rng)
