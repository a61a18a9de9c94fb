"""What the RiskManager reads from the broker and what it shows: the account, one symbol's exposure, an
order's entry price, and the metrics of a state. Every failure to read becomes :class:`Unreadable`, whose
message is the refusal's reason (the RiskManager never raises on a broker error).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.errors import EngineError
from engine.trading import risk_rules as rules
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import RiskState

log = logging.getLogger("engine.trading.risk")


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


class Unreadable(Exception):
    """The broker could not be read; the message is the refusal's reason."""


def why(exc: BaseException) -> str:
    # Engine errors are written to be shown (no secrets); anything else is named by type only.
    return str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__} (see the log)"


def records(rows: Any) -> list[Mapping[str, Any]]:
    if rows is None:
        return []
    if hasattr(rows, "to_dict"):
        return list(rows.to_dict("records"))
    return list(rows)


def read(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # REST, transport, contract: all become a refusal with the reason
        log.warning("risk check cannot read %s: %s", what, why(exc), exc_info=not isinstance(exc, EngineError))
        raise Unreadable(f"cannot read {what} from the broker: {why(exc)}") from None


def account(client: AccountReader) -> tuple[float, float, Mapping[str, Any]]:
    """(balance, floating LOSS of open positions (<= 0), the raw answer). Open gains are not counted:
    they may vanish before the positions close, so they never offset a realised loss."""
    info = read("the account", lambda: client.account_info())
    try:
        balance, equity = float(info["balance"]), float(info["equity"])
    except (KeyError, TypeError, ValueError):
        raise Unreadable("the broker's account answer lacks a numeric balance/equity") from None
    if not (math.isfinite(balance) and math.isfinite(equity)):
        raise Unreadable("the broker's account answer has a non-finite balance/equity")
    return balance, min(0.0, equity - balance), info


def exposure(client: AccountReader, symbol: str) -> rules.Exposure:
    positions = read(f"{symbol} positions", lambda: client.positions(symbol))
    orders = read(f"{symbol} pending orders", lambda: client.orders(symbol))
    try:
        return rules.exposure_from_records(records(positions), records(orders))
    except (EngineError, ValueError, TypeError, AttributeError) as exc:
        raise Unreadable(f"cannot count {symbol} exposure: {why(exc)}") from None


def metrics(state: RiskState, limits: RiskLimits, *, persisted: bool = True) -> dict[str, Any]:
    """The seed's four figures plus the status and its history, for logs, the CLI and dashboards."""
    status, reason = rules.status_of(state, limits)
    return {"drawdown": rules.drawdown(state), "daily_pnl": state.daily_pnl, "peak_balance": state.peak_balance,
            "last_balance": state.last_balance, "day_start_balance": state.day_start_balance,
            "daily_loss": rules.daily_loss(state), "state": status.name, "reason": reason or state.reason,
            "latched_state": state.status.name, "trading_day": state.trading_day.isoformat(),
            "updated_at": iso(state.updated_at), "halted_at": iso(state.halted_at),
            "changed_by": state.changed_by, "changed_at": iso(state.changed_at), "persisted": persisted,
            "unresolved_orders": state.unresolved_orders, "booked_deals": len(state.booked),
            "unsettled_positions": {str(u.ticket): u.describe() for u in state.unsettled}}


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def entry_price(info: Mapping[str, Any], stop_loss: float, price: float | None,
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


__all__ = ["AccountReader", "Lots", "Unreadable", "account", "entry_price", "exposure", "metrics", "read", "records",
           "why"]
