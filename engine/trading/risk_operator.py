"""The operator's actions on a RiskManager (also ``python -m engine.risk_cli``): reset, halt, reduce.

A mixin of :class:`engine.trading.risk.RiskManager`, kept apart so that class stays small; it uses the
manager's clock, limits and compare-and-set write (``_sync``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from engine.errors import StorageError
from engine.trading import risk_rules as rules
from engine.trading import risk_view as view
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import RiskState, RiskStatus
from engine.trading.risk_view import metrics

log = logging.getLogger("engine.trading.risk")


class OperatorActions:
    """Latch a status by hand, recording who and when; an unsaved change is an error, never kept in memory."""

    limits: RiskLimits
    _clock: Callable[[], dt.datetime]
    _sync: Callable[..., tuple[RiskState, str | None]]

    def reset(self, by: str, note: str = "") -> dict[str, Any]:
        """Back to ACTIVE, limits counted from the current balance; records ``by`` and the time."""
        return self._operator(RiskStatus.ACTIVE, by, note)

    def halt(self, by: str, note: str = "") -> dict[str, Any]:
        return self._operator(RiskStatus.HALTED, by, note)

    def reduce(self, by: str, note: str = "") -> dict[str, Any]:
        return self._operator(RiskStatus.REDUCING, by, note)

    def _operator(self, status: RiskStatus, by: str, note: str) -> dict[str, Any]:
        now = self._clock()
        try:
            state, problem = self._sync(lambda s: rules.operator_set(s, status, by, now, self.limits, note))
        except view.Unreadable as exc:
            raise StorageError(f"risk state unavailable: {exc}") from None
        if problem is not None:
            raise StorageError(f"{status.name.lower()} by {by} not recorded: {problem}")
        log.warning("risk state %s", state.reason)
        return metrics(state, self.limits)


__all__ = ["OperatorActions"]
