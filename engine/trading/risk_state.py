"""The RiskManager's persistent state and the protocol of the stores that keep it.

The state is what a restart must not forget: the balance peak (for drawdown), the balance at the start
of the trading day and the day's PnL (for the daily loss limit), and the latched status with who set or
reset it and when. Stores live in :mod:`engine.storage.risk_state` (a JSON file, a PostgreSQL table);
:class:`MemoryRiskStore` is the in-process default and the reference for their behaviour.

Writes are compare-and-set on ``version``: a store keeps a state only if it is the successor of the one
it holds, so an operator's reset from another process is never overwritten by a running engine that
had read the state before the reset (the engine reloads and re-applies its change instead).

The record also holds the closing deals already booked and the orders whose fate is unknown. Booking a
trade and remembering its deals is then one compare-and-set write: a crash leaves both or neither, so a
restart can neither book a closed trade twice nor forget it. An unknown order blocks new exposure in every
process that reads the record, across restarts, until it is found at the broker or an operator clears it.
So does a position gone from the broker whose closing deals are not in its history yet (``unsettled``):
its loss is not in the balances, so the limits cannot be trusted until it is booked (found later, or
settled by an operator) — in the same write that removes it from ``unsettled``.
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
class UnsettledPosition:
    """A position gone from the broker whose closing deals were not in its history when the loop looked."""

    ticket: int
    side: int  # +1 long, -1 short
    since: dt.datetime  # when it was found gone (broker clock): the operator's alarm counts from here
    volume: float | None = None  # its last known lots (None: not seen since a restart)
    opened: dt.datetime | None = None  # its open time: the look for its closing deals starts there
    # Lots its closing deals booked so far cover (closed in pieces, only some listed yet); 0 when none is.
    booked_volume: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "side": self.side, "since": self.since.isoformat(), "volume": self.volume,
                "opened": None if self.opened is None else self.opened.isoformat(), "booked_volume": self.booked_volume}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> UnsettledPosition:
        """Inverse of :meth:`to_dict`; a record written before ``booked_volume`` existed has booked none."""
        opened, volume = raw.get("opened"), raw.get("volume")
        return cls(ticket=int(raw["ticket"]), side=int(raw["side"]), since=_when(raw["since"]),
                   volume=None if volume is None else float(volume), opened=None if opened is None else _when(opened),
                   booked_volume=float(raw.get("booked_volume") or 0.0))

    def describe(self) -> str:
        lots = "" if self.volume is None else f" {self.volume:g} lots"
        opened = "" if self.opened is None else f", opened {self.opened.isoformat()}"
        part = "" if self.booked_volume <= 0 else (f", {self.booked_volume:g} lots of closing deals booked (settle "
                                                   "with the profit of the rest)")
        return f"{'long' if self.side > 0 else 'short'}{lots}{opened}, gone since {self.since.isoformat()}{part}"


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
    # Closing deals booked into the balances above: (deal ticket, when booked), by ticket; pruned by age
    # (engine.trading.risk_rules.BOOKED_RETENTION) beyond any history window a settlement reads, counted from
    # when the oldest unsettled position was found gone while one is.
    booked: tuple[tuple[int, dt.datetime], ...] = ()
    # Orders whose fate is unknown (a lost answer nobody could reconcile): (order key, what is known).
    unresolved: tuple[tuple[str, str], ...] = ()
    # Positions gone from the broker whose closing deals are not booked yet (not in its history), by ticket.
    unsettled: tuple[UnsettledPosition, ...] = ()

    @property
    def unsettled_positions(self) -> dict[int, UnsettledPosition]:
        return {u.ticket: u for u in self.unsettled}

    @property
    def booked_deals(self) -> frozenset[int]:
        return frozenset(ticket for ticket, _ in self.booked)

    @property
    def unresolved_orders(self) -> dict[str, str]:
        return dict(self.unresolved)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates and times as ISO 8601, the status by name."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "booked":
                value = [[ticket, at.isoformat()] for ticket, at in value]
            elif f.name == "unresolved":
                value = [[key, note] for key, note in value]
            elif f.name == "unsettled":
                value = [item.to_dict() for item in value]
            elif isinstance(value, RiskStatus):
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
                       version=int(raw.get("version", 0)), booked=booked_from(raw.get("booked")),
                       unresolved=unresolved_from(raw.get("unresolved")),
                       unsettled=unsettled_from(raw.get("unsettled")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataQualityError(f"risk state record is damaged ({type(exc).__name__}: {exc}); "
                                   "inspect it with `python -m engine.risk_cli status`") from None


def booked_from(raw: Any) -> tuple[tuple[int, dt.datetime], ...]:
    """``[[ticket, iso time], ...]`` (JSON, JSONB) as the state's sorted ``booked``; None (an older record) is ()."""
    pairs = [(int(ticket), _when(at)) for ticket, at in (raw or ())]
    return tuple(sorted(pairs))


def unresolved_from(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(key), str(note)) for key, note in (raw or ())))


def unsettled_from(raw: Any) -> tuple[UnsettledPosition, ...]:
    """``[{ticket, side, since, volume, opened}, ...]`` (JSON, JSONB) by ticket; None (an older record) is ()."""
    return tuple(sorted((UnsettledPosition.from_dict(item) for item in (raw or ())), key=lambda u: u.ticket))


def _when(value: Any) -> dt.datetime:
    return _aware(value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value)))


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
