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
from dataclasses import replace
from typing import Any, Protocol

from engine.errors import EngineError, StorageError
from engine.trading import risk_rules as rules
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import MemoryRiskStore, RiskState, RiskStateStore, RiskStatus
from engine.trading.sizing import SymbolSpec, position_size

log = logging.getLogger("engine.trading.risk")

_SAVE_ATTEMPTS = 5  # compare-and-set retries when another process (an operator) writes at the same time


class AccountReader(Protocol):
    """What the RiskManager reads from the broker (MT5RestClient satisfies it). It never sends orders."""

    def account_info(self) -> Mapping[str, Any]: ...

    def symbol_info(self, symbol: str) -> Mapping[str, Any]: ...

    def positions(self, symbol: str | None = None) -> Any:
        """Open positions of ``symbol``: a DataFrame or records with ``type`` and ``volume``."""
        ...

    def orders(self, symbol: str | None = None) -> Any:
        """Pending orders of ``symbol``: a DataFrame or records with ``type`` and ``volume_current``."""
        ...


class Lots(float):
    """A volume in lots that also carries why it is that size (``reason``); 0.0 when nothing may trade."""

    reason: str

    def __new__(cls, volume: float, reason: str = "") -> Lots:
        obj = super().__new__(cls, volume)
        obj.reason = reason
        return obj

    def __reduce__(self) -> tuple[type[Lots], tuple[float, str]]:
        return Lots, (float(self), self.reason)


class _Unreadable(Exception):
    """The broker could not be read; the message is the refusal's reason."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _why(exc: BaseException) -> str:
    # Engine errors are written to be shown (no secrets); anything else is named by type only.
    return str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__} (see the log)"


def _records(rows: Any) -> list[Mapping[str, Any]]:
    if rows is None:
        return []
    if hasattr(rows, "to_dict"):
        return list(rows.to_dict("records"))
    return list(rows)


class RiskManager:
    """Drawdown, daily-loss and exposure limits with ACTIVE / REDUCING / HALTED states.

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
        self._pending: list[tuple[float, dt.datetime]] = []  # trades the store has not taken yet
        self._lock = threading.RLock()
        try:  # seed the state from the broker's balance now, so the first trade has a baseline
            self._sync(lambda s: s)
        except _Unreadable as exc:
            log.warning("risk state not initialised yet: %s", exc)

    @classmethod
    def from_limits(cls, client: AccountReader, limits: RiskLimits, **kwargs: Any) -> RiskManager:
        """Build from a RiskLimits (e.g. the ``risk`` config group built by the composition root)."""
        return cls(client, **dataclasses.asdict(limits), **kwargs)

    def __repr__(self) -> str:
        return f"RiskManager({self.limits}, store={self.store.describe()!r}, key={self.key!r})"

    # -- reads -------------------------------------------------------------------------------------------
    def _read(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # REST, transport, contract: all become a refusal with the reason
            log.warning("risk check cannot read %s: %s", what, _why(exc), exc_info=not isinstance(exc, EngineError))
            raise _Unreadable(f"cannot read {what} from the broker: {_why(exc)}") from None

    def _account(self) -> tuple[float, float, Mapping[str, Any]]:
        """(balance, floating LOSS of open positions (<= 0), the raw answer). Open gains are not counted:
        they may vanish before the positions close, so they never offset a realised loss."""
        info = self._read("the account", lambda: self.client.account_info())
        try:
            balance, equity = float(info["balance"]), float(info["equity"])
        except (KeyError, TypeError, ValueError):
            raise _Unreadable("the broker's account answer lacks a numeric balance/equity") from None
        if not (math.isfinite(balance) and math.isfinite(equity)):
            raise _Unreadable("the broker's account answer has a non-finite balance/equity")
        return balance, min(0.0, equity - balance), info

    def _exposure(self, symbol: str) -> rules.Exposure:
        positions = self._read(f"{symbol} positions", lambda: self.client.positions(symbol))
        orders = self._read(f"{symbol} pending orders", lambda: self.client.orders(symbol))
        try:
            return rules.exposure_from_records(_records(positions), _records(orders))
        except (EngineError, ValueError, TypeError, AttributeError) as exc:
            raise _Unreadable(f"cannot count {symbol} exposure: {_why(exc)}") from None

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
                    problem = f"risk state store {self.store.describe()} unreadable: {_why(exc)}"
                    break
                state = self._with_pending(stored, balance, change)
                if stored is not None and state == stored:  # nothing changed: no write
                    self._state, self._pending = stored, []
                    return stored, None
                state = replace(state, version=(stored.version if stored else 0) + 1)
                try:
                    saved = self.store.save(self.key, state)
                except Exception as exc:
                    problem = f"risk state store {self.store.describe()} unwritable: {_why(exc)}"
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
                balance, _, _ = self._account()
            # The broker's balance already holds trades reported before the state existed: start before them.
            start = balance - sum(profit for profit, _ in self._pending)
            base = rules.initial_state(start, self._pending[0][1] if self._pending else self._clock(), self.limits)
        for profit, at in self._pending:
            base = rules.apply_trade(base, profit, at, self.limits)
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
            balance, floating, _ = self._account()
            exposure = self._exposure(symbol)
            _, status, why = self._checked(balance, floating)
        except (_Unreadable, ValueError) as exc:
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
            balance, floating, account = self._account()
            info = self._read(f"{symbol} symbol info", lambda: self.client.symbol_info(symbol))
            spec = SymbolSpec.from_info(info, account.get("currency"))
            _, status, why = self._checked(balance, floating)
            entry, direction = _entry(info, stop_loss, price, direction)
        except (_Unreadable, ValueError) as exc:
            return Lots(0.0, str(exc))
        if status != RiskStatus.ACTIVE:
            return Lots(0.0, f"{status.name} ({why}): no new position is sized")
        if direction * (entry - stop_loss) <= 0:
            return Lots(0.0, f"a {'buy' if direction > 0 else 'sell'} at {entry} cannot have its stop at {stop_loss}")
        decision = position_size(float(account["equity"]), self.limits.risk_per_trade, entry, stop_loss, spec,
                                 cap=self.limits.max_position_size)
        return Lots(decision.volume, decision.reason)

    def update_after_trade(self, profit: float) -> None:
        """Book a closed trade's profit (negative for a loss) in the ledger; may HALT."""
        if isinstance(profit, bool) or not isinstance(profit, int | float) or not math.isfinite(profit):
            raise ValueError(f"profit must be a finite number, got {profit!r}")
        with self._lock:
            self._pending.append((float(profit), self._clock()))
            try:
                state, problem = self._sync(lambda s: s)
            except _Unreadable as exc:  # no state yet and no balance: the trade waits in memory
                log.error("trade of %.2f kept in memory: %s", profit, exc)
                return
        if problem is None and state.status == RiskStatus.HALTED:
            log.warning("risk HALTED: %s", state.reason)

    def get_risk_metrics(self) -> dict[str, Any]:
        """The ledger's figures and the status (without the open positions' floating PnL)."""
        now = self._clock()
        try:
            state, problem = self._sync(lambda s: rules.roll_day(s, now, self.limits))
        except _Unreadable as exc:
            return {"drawdown": math.nan, "daily_pnl": math.nan, "peak_balance": math.nan,
                    "last_balance": math.nan, "state": "UNKNOWN", "reason": str(exc), "persisted": False}
        return metrics(state, self.limits, persisted=problem is None) | ({"problem": problem} if problem else {})

    # -- operator actions (also `python -m engine.risk_cli`) -----------------------------------------------
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
        except _Unreadable as exc:
            raise StorageError(f"risk state unavailable: {exc}") from None
        if problem is not None:
            raise StorageError(f"{status.name.lower()} by {by} not recorded: {problem}")
        log.warning("risk state %s", state.reason)
        return metrics(state, self.limits)


def metrics(state: RiskState, limits: RiskLimits, *, persisted: bool = True) -> dict[str, Any]:
    """The seed's four figures plus the status and its history, for logs, the CLI and dashboards."""
    status, reason = rules.status_of(state, limits)
    return {"drawdown": rules.drawdown(state), "daily_pnl": state.daily_pnl, "peak_balance": state.peak_balance,
            "last_balance": state.last_balance, "day_start_balance": state.day_start_balance,
            "daily_loss": rules.daily_loss(state), "state": status.name, "reason": reason or state.reason,
            "latched_state": state.status.name, "trading_day": state.trading_day.isoformat(),
            "updated_at": _iso(state.updated_at), "halted_at": _iso(state.halted_at),
            "changed_by": state.changed_by, "changed_at": _iso(state.changed_at), "persisted": persisted}


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _entry(info: Mapping[str, Any], stop_loss: float, price: float | None,
           direction: int | None) -> tuple[float, int]:
    """(entry price, +1 long / -1 short) for a stop at ``stop_loss``."""
    if isinstance(stop_loss, bool) or not isinstance(stop_loss, int | float) or not math.isfinite(stop_loss) \
            or stop_loss <= 0:
        raise ValueError(f"stop_loss must be a positive price, got {stop_loss!r}")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive number, got {price!r}")
        return float(price), direction if direction is not None else (1 if stop_loss < price else -1)
    try:
        bid, ask = float(info["bid"]), float(info["ask"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("symbol info has no bid/ask: give price= for the entry") from None
    if direction is None:
        if bid < stop_loss < ask or stop_loss in (bid, ask):
            raise ValueError(f"the stop {stop_loss} is inside the spread {bid}..{ask}: no side can use it")
        direction = 1 if stop_loss < bid else -1
    return (ask if direction > 0 else bid), direction
