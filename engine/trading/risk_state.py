"""The RiskManager's persistent state and the protocol of the stores that keep it.

The state is what a restart must not forget: the balance peak (for drawdown), the balance at the start
of the trading day and the day's PnL (for the daily loss limit), and the latched status with who set or
reset it and when. Stores live in :mod:`engine.storage.risk_state` (a JSON file, a PostgreSQL table);
:class:`MemoryRiskStore` is the in-process default and the reference for their behaviour.

Writes are compare-and-set on ``version``: a store keeps a state only if it is the successor of the one
it holds, so an operator's reset from another process is never overwritten by a running engine that
had read the state before the reset (the engine reloads and re-applies its change instead).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.errors import DataQualityError


class RiskStatus(enum.IntEnum):
    """Ordered by severity, so the stricter of two statuses is ``max(a, b)``."""

    ACTIVE = 0  # every order within the limits
    REDUCING = 1  # only orders that reduce the symbol's exposure
    HALTED = 2  # no new exposure until an operator resets


@dataclass(frozen=True)
class RiskState:
    """Balances are the ledger of trades reported through ``update_after_trade``, seeded from the broker.

    ``status`` is the LATCHED status: HALTED after a breach, or whatever an operator set; the effective
    status may be stricter (REDUCING near a limit), see :func:`engine.trading.risk_rules.status_of`.
    """

    peak_balance: float
    day_start_balance: float
    last_balance: float
    daily_pnl: float
    trading_day: dt.date
    status: RiskStatus = RiskStatus.ACTIVE
    reason: str = ""
    updated_at: dt.datetime | None = None
    halted_at: dt.datetime | None = None
    changed_by: str | None = None  # the operator who last reset/halted/reduced by hand
    changed_at: dt.datetime | None = None
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates and times as ISO 8601, the status by name."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RiskStatus):
                value = value.name
            elif isinstance(value, dt.date):  # datetime is a date too
                value = value.isoformat()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RiskState:
        """Inverse of :meth:`to_dict`; a damaged record is a DataQualityError naming the field."""
        try:
            def when(name: str) -> dt.datetime | None:
                value = raw.get(name)
                return None if value is None else _aware(dt.datetime.fromisoformat(str(value)))

            day = raw["trading_day"]
            return cls(peak_balance=float(raw["peak_balance"]), day_start_balance=float(raw["day_start_balance"]),
                       last_balance=float(raw["last_balance"]), daily_pnl=float(raw["daily_pnl"]),
                       trading_day=day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)),
                       status=RiskStatus[str(raw.get("status", "ACTIVE"))], reason=str(raw.get("reason") or ""),
                       updated_at=when("updated_at"), halted_at=when("halted_at"),
                       changed_by=raw.get("changed_by"), changed_at=when("changed_at"),
                       version=int(raw.get("version", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataQualityError(f"risk state record is damaged ({type(exc).__name__}: {exc}); "
                                   "inspect it with `python -m engine.risk_cli status`") from None


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def trading_day(now: dt.datetime, offset_hours: float = 0.0) -> dt.date:
    """The trading day ``now`` belongs to: the UTC date by default, the broker's server date when
    ``offset_hours`` is the server's offset from UTC (MT5 servers often run at UTC+2/+3)."""
    return (_aware(now) + dt.timedelta(hours=offset_hours)).date()


@runtime_checkable
class RiskStateStore(Protocol):
    """Keeps one RiskState per key (an account or a strategy)."""

    def load(self, key: str) -> RiskState | None:
        """The stored state, or None when the key has none yet."""
        ...

    def save(self, key: str, state: RiskState) -> bool:
        """Store ``state`` if it succeeds the stored one (``state.version`` is the stored version + 1, or
        1 when nothing is stored); return False, storing nothing, when someone else wrote in between."""
        ...

    def describe(self) -> str: ...


class MemoryRiskStore:
    """In-process store: a restart forgets it. The default when a RiskManager is given no store."""

    def __init__(self) -> None:
        self._states: dict[str, RiskState] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> RiskState | None:
        with self._lock:
            return self._states.get(key)

    def save(self, key: str, state: RiskState) -> bool:
        with self._lock:
            held = self._states.get(key)
            if state.version != (held.version if held else 0) + 1:
                return False
            self._states[key] = state
            return True

    def describe(self) -> str:
        return "memory (not persisted)"
