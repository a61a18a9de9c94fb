"""RiskManager: the gate every order passes (the seed's ``RiskManager``), over a read-only broker view.

    risk = RiskManager(client, max_drawdown=0.05, max_daily_loss=0.05, risk_per_trade=0.01,
                       max_position_size=1.0)
    risk.can_open_position("BTCUSD", 0.1)            # {"allowed": True, "reason": "..."}
    risk.calculate_position_size("BTCUSD", 51000.0)  # lots, rounded down to the volume step
    risk.update_after_trade(-42.5)                   # a closed trade's profit
    risk.get_risk_metrics()                          # {"drawdown": ..., "daily_pnl": ..., ...}

The decisions are the pure functions of :mod:`engine.trading.risk_rules`; this class only gathers
their inputs (account, positions, pending orders and symbol info from the client; the state from the
store) and turns every failure to read them into a refusal with a reason, never an exception.

``can_open_position(symbol, volume, side=None)``: the side is optional for the seed's two-argument
call. Without it the order is checked in both directions and never counts as reducing, so it passes in
ACTIVE when both directions fit the limit and is refused in REDUCING.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.trading import risk_rules as rules
from engine.trading import risk_view as view
from engine.trading.risk_operator import OperatorActions
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import (
    MemoryRiskStore,
    RiskState,
    RiskStateStore,
    RiskStatus,
    UnsettledPosition,
)
from engine.trading.risk_view import AccountReader, Lots, metrics
from engine.trading.sizing import SymbolSpec, position_size

log = logging.getLogger("engine.trading.risk")

_SAVE_ATTEMPTS = 5  # compare-and-set retries when another process (an operator) writes at the same time


@dataclass(frozen=True)
class _Change:
    """A change the store has not taken yet; re-applied to every state loaded until one save holds it.
    ``profit`` is what it adds to the broker's balance (for the baseline of a state that does not exist yet)."""

    at: dt.datetime
    apply: Callable[[RiskState], RiskState]
    profit: float = 0.0
    booking: tuple[Any, ...] | None = None  # (deals, position, keep) of a book_deals change


@dataclass(frozen=True)
class Booking:
    """What :meth:`RiskManager.book_deals` did: the deals booked now (others were booked before) and their
    profit; ``persisted`` False when the store has not taken it yet (kept in memory and retried)."""

    deals: tuple[int, ...]
    profit: float
    persisted: bool


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RiskManager(OperatorActions):
    """Drawdown, daily-loss and exposure limits with ACTIVE / REDUCING / HALTED states.

    Operator actions (``reset``, ``halt``, ``reduce``) come from :class:`engine.trading.risk_operator.OperatorActions`.
    ``store`` keeps the state across restarts (``engine.storage.risk_state``: a JSON file or a
    PostgreSQL table); without one the state lives in memory only. ``key`` names the state in the store
    (one per account or strategy). ``clock`` returns aware UTC datetimes (tests move time with it).
    """

    def __init__(self, client: AccountReader, max_drawdown: float = 0.05, max_daily_loss: float = 0.05,
                 risk_per_trade: float = 0.01, max_position_size: float = 1.0, *, reduce_at: float = 0.8,
                 day_offset_hours: float = 0.0, store: RiskStateStore | None = None, key: str = "default",
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.limits = RiskLimits(max_drawdown=max_drawdown, max_daily_loss=max_daily_loss,
                                 risk_per_trade=risk_per_trade, max_position_size=max_position_size,
                                 reduce_at=reduce_at, day_offset_hours=day_offset_hours)
        if client is None:
            raise ValueError("RiskManager needs a client to read the account: pass an MT5RestClient (engine.mt5)")
        self.client = client
        self.store: RiskStateStore = store if store is not None else MemoryRiskStore()
        self.key = key
        self._clock = clock or _utcnow
        self._state: RiskState | None = None  # the last state read from or written to the store
        self._pending: list[_Change] = []  # trades and order holds the store has not taken yet
        self._lock = threading.RLock()
        try:  # seed the state from the broker's balance now, so the first trade has a baseline
            self._sync(lambda s: s)
        except view.Unreadable as exc:
            log.warning("risk state not initialised yet: %s", exc)

    @classmethod
    def from_limits(cls, client: AccountReader, limits: RiskLimits, **kwargs: Any) -> RiskManager:
        """Build from a RiskLimits (e.g. the ``risk`` config group built by the composition root)."""
        return cls(client, **dataclasses.asdict(limits), **kwargs)

    def __repr__(self) -> str:
        return f"RiskManager({self.limits}, store={self.store.describe()!r}, key={self.key!r})"

    # -- state -------------------------------------------------------------------------------------------
    def _sync(self, change: Callable[[RiskState], RiskState],
              balance: float | None = None) -> tuple[RiskState, str | None]:
        """Load the stored state, book pending trades, apply ``change`` and store the result.

        Returns (state, problem): ``problem`` is None when the store holds the returned state, else why
        not — the state is then computed from the last known one and kept in memory until it can be saved.
        """
        with self._lock:
            problem = "another writer kept changing the state"
            for _ in range(_SAVE_ATTEMPTS):
                try:
                    stored = self.store.load(self.key)
                except Exception as exc:
                    problem = f"risk state store {self.store.describe()} unreadable: {view.why(exc)}"
                    break
                state = self._with_pending(stored, balance, change)
                if stored is not None and state == stored:  # nothing changed: no write
                    self._state, self._pending = stored, []
                    return stored, None
                state = replace(state, version=(stored.version if stored else 0) + 1)
                try:
                    saved = self.store.save(self.key, state)
                except Exception as exc:
                    problem = f"risk state store {self.store.describe()} unwritable: {view.why(exc)}"
                    break
                if saved:
                    self._state, self._pending = state, []
                    return state, None
            log.error("%s; the risk state is kept in memory and new exposure is refused until it is saved",
                      problem)
            return self._with_pending(self._state, balance, change), problem

    def _with_pending(self, base: RiskState | None, balance: float | None,
                      change: Callable[[RiskState], RiskState]) -> RiskState:
        if base is None:
            if balance is None:
                balance, _, _ = view.account(self.client)
            # The broker's balance already holds trades reported before the state existed: start before them.
            start = balance - sum(c.profit for c in self._pending)
            base = rules.initial_state(start, self._pending[0].at if self._pending else self._clock(), self.limits)
        for pending in self._pending:
            base = pending.apply(base)
        return change(base)

    def _checked(self, balance: float, floating: float) -> tuple[RiskState, RiskStatus, str]:
        now = self._clock()
        state, problem = self._sync(
            lambda s: rules.latch_breach(rules.roll_day(s, now, self.limits), self.limits, now, floating), balance)
        status, reason = rules.status_of(state, self.limits, floating)
        if problem is not None and status < RiskStatus.REDUCING:
            # Unsaved state: a restart would forget it, so only exposure-reducing orders go through.
            status, reason = RiskStatus.REDUCING, problem
        return state, status, reason

    # -- the seed API --------------------------------------------------------------------------------------
    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> dict[str, Any]:
        """``{"allowed": bool, "reason": str}`` for an order of ``volume`` lots of ``symbol``."""
        try:
            direction = rules.parse_side(side)
            balance, floating, _ = view.account(self.client)
            exposure = view.exposure(self.client, symbol)
            _, status, why = self._checked(balance, floating)
        except (view.Unreadable, ValueError) as exc:
            decision = rules.Decision(False, str(exc), RiskStatus.HALTED)
        else:
            decision = rules.decide_open(self.limits, status, why, exposure, volume, direction)
        level = logging.DEBUG if decision.allowed else logging.WARNING
        log.log(level, "risk %s %s %s lots of %s: %s", "allows" if decision.allowed else "refuses",
                side or "an order of", volume, symbol, decision.reason)
        return decision.as_dict()

    def calculate_position_size(self, symbol: str, stop_loss: float, *, side: str | None = None,
                                price: float | None = None) -> Lots:
        """Lots risking ``risk_per_trade`` of equity if ``stop_loss`` is hit, as a float with a ``reason``.

        The entry is ``price`` when given, else the side of the book a market order fills at: the ask
        for a long (stop below the bid), the bid for a short (stop above the ask).
        """
        try:
            direction = rules.parse_side(side)
            balance, floating, account = view.account(self.client)
            info = view.read(f"{symbol} symbol info", lambda: self.client.symbol_info(symbol))
            spec = SymbolSpec.from_info(info, account.get("currency"))
            _, status, why = self._checked(balance, floating)
            entry, direction = view.entry_price(info, stop_loss, price, direction)
        except (view.Unreadable, ValueError) as exc:
            return Lots(0.0, str(exc))
        if status != RiskStatus.ACTIVE:
            return Lots(0.0, f"{status.name} ({why}): no new position is sized")
        if direction * (entry - stop_loss) <= 0:
            return Lots(0.0, f"a {'buy' if direction > 0 else 'sell'} at {entry} cannot have its stop at {stop_loss}")
        decision = position_size(float(account["equity"]), self.limits.risk_per_trade, entry, stop_loss, spec,
                                 cap=self.limits.max_position_size)
        return Lots(decision.volume, decision.reason)

    def update_after_trade(self, profit: float) -> None:
        """Book a closed trade's profit (negative for a loss) in the ledger; may HALT. A caller that knows the
        trade's closing deals should use :meth:`book_deals`, which books each deal exactly once."""
        if isinstance(profit, bool) or not isinstance(profit, int | float) or not math.isfinite(profit):
            raise ValueError(f"profit must be a finite number, got {profit!r}")
        at, limits = self._clock(), self.limits
        self._change(_Change(at, lambda s: rules.apply_trade(s, float(profit), at, limits), float(profit)),
                     f"trade of {profit:.2f}")

    def book_deals(self, profits: Mapping[int, float], position: int | None = None,
                   keep: UnsettledPosition | None = None) -> Booking:
        """Book closing deals (ticket -> profit net of costs) that the state does not hold yet.

        The deals and the balances they move are one compare-and-set write of the state, so a crash
        before it leaves neither and a crash after it both: a restart that settles the same deals again
        books nothing. Deals booked before (by this or another process) are skipped. ``position`` (the one
        they closed) leaves the unsettled positions in the same write (nothing is booked for one an operator
        settled by hand). ``keep``, a position these deals close only in part, stays (or becomes) unsettled
        as given in that same write."""
        at, limits = self._clock(), self.limits
        asked = {int(t): float(p) for t, p in profits.items()}
        if not all(map(math.isfinite, asked.values())):
            raise ValueError(f"deal profits must be finite numbers, got {profits!r}")
        booked: dict[int, float] = {}

        def apply(state: RiskState) -> RiskState:
            nonlocal booked  # the last application is the one the store took (or the one in memory)
            state, booked = rules.book_deals(state, asked, at, limits, position, keep)
            return state

        with self._lock:
            # The same booking already waiting for the store: retry it, not twice. Only the same call matches:
            # a full booking (position=) of deals whose partial one (keep=) waits still has to release it.
            booking = (frozenset(asked), position, keep)
            if any(c.booking == booking for c in self._pending):
                try:
                    return Booking((), 0.0, self._sync(lambda s: s)[1] is None)
                except view.Unreadable:
                    return Booking((), 0.0, False)
            problem = self._change(_Change(at, apply, sum(asked.values()), booking), f"deals {sorted(asked)}")
        return Booking(tuple(sorted(booked)), sum(booked.values()), problem is None)

    def hold_order(self, key: str, note: str) -> bool:
        """Record an order whose fate is unknown: no new exposure until :meth:`release_order` (the order was
        found at the broker) or an operator clears it (``python -m engine.risk_cli clear-order``). True when
        the store holds the mark (else it holds in this process and is retried)."""
        at = self._clock()
        log.error("order %s: fate unknown (%s); new exposure is blocked until it is resolved", key, note)
        return self._change(_Change(at, lambda s: rules.hold_order(s, key, note, at)), f"hold of {key}") is None

    def release_order(self, key: str, by: str | None = None) -> bool:
        """The fate of order ``key`` is known: lift its block (``by``: the operator who checked, if any)."""
        at = self._clock()
        return self._change(_Change(at, lambda s: rules.release_order(s, key, at, by)), f"release of {key}") is None

    def hold_position(self, item: UnsettledPosition) -> bool:
        """Record a position gone from the broker whose closing deals are not in its history yet: no new exposure
        until they are booked (:meth:`book_deals` with ``position``) or an operator settles it (``python -m
        engine.risk_cli settle``). True when the store holds the mark (else it holds here and is retried)."""
        at = self._clock()
        return self._change(_Change(at, lambda s: rules.hold_position(s, item, at)), f"position {item.ticket}") is None

    def unresolved_orders(self) -> dict[str, str]:
        """Orders whose fate is unknown, from the last state read or written (no store access)."""
        return {} if (state := self._latest()) is None else state.unresolved_orders

    def unsettled_positions(self) -> dict[int, UnsettledPosition]:
        """Positions gone whose closing deals are not booked yet, from the last state read or written."""
        return {} if (state := self._latest()) is None else state.unsettled_positions

    def _latest(self) -> RiskState | None:
        with self._lock:
            state = self._state
            for pending in self._pending if state is not None else ():
                state = pending.apply(state)
        return state

    def _change(self, change: _Change, what: str) -> str | None:
        """Apply ``change`` through the store; None when saved, else why not (kept in memory, retried)."""
        with self._lock:
            self._pending.append(change)
            try:
                state, problem = self._sync(lambda s: s)
            except view.Unreadable as exc:  # no state yet and no balance: the change waits in memory
                log.error("%s kept in memory: %s", what, exc)
                return str(exc)
        if problem is None and state.status == RiskStatus.HALTED:
            log.warning("risk HALTED: %s", state.reason)
        return problem

    def get_risk_metrics(self) -> dict[str, Any]:
        """The ledger's figures and the status (without the open positions' floating PnL)."""
        now = self._clock()
        try:
            state, problem = self._sync(lambda s: rules.roll_day(s, now, self.limits))
        except view.Unreadable as exc:
            return {"drawdown": math.nan, "daily_pnl": math.nan, "peak_balance": math.nan,
                    "last_balance": math.nan, "state": "UNKNOWN", "reason": str(exc), "persisted": False}
        return metrics(state, self.limits, persisted=problem is None) | ({"problem": problem} if problem else {})


__all__ = ["AccountReader", "Booking", "Lots", "RiskManager", "metrics"]
