"""Seeded fault injection for the simulator's server (the contract server's hooks).

Rates come from :class:`SimSettings` (``error_rate``, ``latency_ms``, ``drop_rate``); tests set exact
one-shot faults: ``fail_next``/``drop_next``/``garble_next``/``stall_next``/``trickle_next`` make the next N
requests (on ``only_route`` when set) fail before execution, execute and vanish, execute and come back as an
HTML page, execute and hold the answer for ``stall_seconds`` (past a client's read timeout) before dropping
it, or execute and send the answer one byte every ``trickle_interval`` seconds (every read gets data in
time, the whole answer never does). ``delay_deals_next`` makes the next N closing deals reach the deal
history only ``delay_deals_seconds`` (server time) after they happen, as a terminal's history can lag behind
its positions: the position is gone, its closing deal not listed yet.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from engine.mt5.sim.settings import SimSettings

DEAL_ENTRY_OUT = 1  # a deal closing a position
LATENCY_LIMIT_S = 30.0  # injected latency never hangs a test run longer than this


class Faults:
    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.error_status = 503
        self.retry_after: str | None = "0"
        self.fail_next = 0
        self.drop_next = 0
        self.garble_next = 0
        self.stall_next = 0
        self.stall_seconds = 1.0
        self.trickle_next = 0
        self.trickle_interval = 0.4
        self.delay_deals_next = 0
        self.delay_deals_seconds = 120.0
        self.only_route: str | None = None
        self._rng = random.Random(self.settings.seed)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self.settings
        return (f"Faults(error_rate={s.error_rate}, latency_ms={s.latency_ms}, drop_rate={s.drop_rate}, "
                f"fail_next={self.fail_next}, drop_next={self.drop_next}, garble_next={self.garble_next}, "
                f"stall_next={self.stall_next}, trickle_next={self.trickle_next}, "
                f"delay_deals_next={self.delay_deals_next}, only_route={self.only_route!r})")

    def _applies(self, route: str) -> bool:
        return self.only_route is None or self.only_route == route

    def before(self, method: str, route: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if self.settings.latency_ms:
            time.sleep(min(self.settings.latency_ms / 1000, LATENCY_LIMIT_S))
        with self._lock:
            if not self._applies(route):
                return None
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
            elif self.settings.error_rate:
                fail = self._rng.random() < self.settings.error_rate
        if not fail:
            return None
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return self.error_status, {"error": "simulated server fault; retry later"}, headers

    def drop_response(self, method: str, route: str) -> bool:
        with self._lock:
            if not self._applies(route):
                return False
            if self.stall_next <= 0:
                if self.drop_next > 0:
                    self.drop_next -= 1
                    return True
                return bool(self.settings.drop_rate) and self._rng.random() < self.settings.drop_rate
            self.stall_next -= 1
        # Executed; the answer is held (outside the lock) until the client has timed out, then dropped.
        time.sleep(min(self.stall_seconds, LATENCY_LIMIT_S))
        return True

    def garble_response(self, method: str, route: str) -> bool:
        with self._lock:
            if not self._applies(route) or self.garble_next <= 0:
                return False
            self.garble_next -= 1
            return True

    def trickle_response(self, method: str, route: str) -> float | None:
        with self._lock:
            if not self._applies(route) or self.trickle_next <= 0:
                return None
            self.trickle_next -= 1
            return self.trickle_interval

    def deal_delay(self, deal: dict[str, Any]) -> float:
        """Seconds a deal just booked stays out of the history (the market's hook; ``only_route`` aside: every
        history read lags alike)."""
        with self._lock:
            if self.delay_deals_next <= 0 or deal.get("entry") != DEAL_ENTRY_OUT:
                return 0.0
            self.delay_deals_next -= 1
            return max(0.0, float(self.delay_deals_seconds))

    def may_block(self) -> bool:
        """Whether a request may sleep here (latency, a stalled answer): then it runs off the event loop."""
        return bool(self.settings.latency_ms) or self.stall_next > 0
