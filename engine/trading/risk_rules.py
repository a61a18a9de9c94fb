"""The RiskManager's decisions as pure functions: limits and state in, a new state or a decision out.

Transitions (the latched status only changes here and by an operator):

    ACTIVE ──(within reduce_at × a limit)──► REDUCING ──(back under it)──► ACTIVE        automatic
    ACTIVE/REDUCING ──(drawdown ≥ max_drawdown or daily loss ≥ max_daily_loss)──► HALTED  latched
    HALTED/REDUCING ──(operator reset)──► ACTIVE   (peak and day start rebased on the current balance)
    any ──(operator halt / reduce)──► HALTED / REDUCING                                   latched

Drawdown is ``(peak − balance) ÷ peak`` and the daily loss ``−daily_pnl ÷ day_start_balance``, both from
the trade ledger; a check with the broker's answer at hand adds the open positions' floating PnL
(equity − balance), so a losing open trade counts before it is closed.

Exposure is counted per direction over every position and pending order of the symbol (not only this
process's): ``long = buy positions + pending buys``, ``short = sell positions + pending sells``. That is
the most the account can hold one way once any subset of pending orders fills and any positions close
(stops, take-profits, an operator, another process) — events the RiskManager does not gate — so a new
order must keep its own direction within ``max_position_size`` even if it ends up alone. A sell against
a long offsets it on a netting account and hedges it on a hedging one; either way it cannot raise the
short side past the cap. In REDUCING an order passes only if it moves the net position toward zero
without crossing it, even when every pending order of its side fills too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded
from engine.trading.risk_state import RiskState, RiskStatus, UnsettledPosition, trading_day
from engine.trading.sizing import VOLUME_EPS

_BOUND_CHECKS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"),
                 "le": (operator.le, "<=")}
RESET_HINT = "an operator resets it with `python -m engine.risk_cli reset --by NAME`"
CLEAR_HINT = "`python -m engine.risk_cli clear-order --order KEY --by NAME` clears it once checked"
SETTLE_HINT = "`python -m engine.risk_cli settle --position TICKET --profit X --by NAME` books it once checked"
# The deal history a settlement reads: at least the last SETTLE_LOOKBACK, and back to the open time of the
# positions it settles (partial closes long before they vanished), never more than OPENED_LOOKBACK back.
SETTLE_LOOKBACK = dt.timedelta(days=30)
OPENED_LOOKBACK = dt.timedelta(days=90)
# How long a booked deal's ticket is remembered: a deal is booked after it happened and a look reads at most
# OPENED_LOOKBACK back (from when the position was found gone, for one held unsettled: see _remember), so a
# ticket booked longer ago than that can never come back.
BOOKED_RETENTION = OPENED_LOOKBACK + dt.timedelta(days=5)


@dataclass(frozen=True)
class RiskLimits:
    """Limits as fractions of balance (drawdown from the peak, loss since the day started, risk per trade)
    and lots (the most one symbol may hold in one direction). Checked when built: a NaN or an out-of-range
    value is a ConfigError (a ValueError) naming ``risk.<field>``."""

    max_drawdown: float = bounded(0.05, gt=0.0, le=1.0)
    max_daily_loss: float = bounded(0.05, gt=0.0, le=1.0)
    risk_per_trade: float = bounded(0.01, gt=0.0, le=1.0)
    max_position_size: float = bounded(1.0, gt=0.0)
    # REDUCING starts at this fraction of either loss limit; 1.0 never reduces before halting.
    reduce_at: float = bounded(0.8, gt=0.0, le=1.0)
    # The trading day's boundary: 0 = midnight UTC; the broker's server day = its UTC offset in hours.
    day_offset_hours: float = bounded(0.0, ge=-12.0, le=14.0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"risk.{f.name}", f"must be a finite number, got {value!r}")
            for name, bound in f.metadata.get("bounds", {}).items():
                holds, symbol = _BOUND_CHECKS[name]
                if bound is not None and not holds(value, bound):
                    raise ConfigError(f"risk.{f.name}", f"must be {symbol} {bound}, got {value!r}")


@dataclass(frozen=True)
class Exposure:
    """One symbol's open positions and pending orders, in lots each way (all owners)."""

    long_positions: float = 0.0
    short_positions: float = 0.0
    pending_buy: float = 0.0
    pending_sell: float = 0.0

    @property
    def net(self) -> float:
        return self.long_positions - self.short_positions

    def side(self, side: int) -> float:
        """The most the account can hold in direction ``side`` (+1 long, -1 short)."""
        return self.long_positions + self.pending_buy if side > 0 else self.short_positions + self.pending_sell

    def worst(self) -> float:
        return max(self.side(1), self.side(-1))

    def with_order(self, side: int, volume: float) -> Exposure:
        """After a new order of ``side``, counted as pending (the worst case until it fills or is cancelled)."""
        if side > 0:
            return replace(self, pending_buy=self.pending_buy + volume)
        return replace(self, pending_sell=self.pending_sell + volume)

    def reducible(self, side: int) -> float:
        """Lots an order of ``side`` may have and still only move the net position toward zero, even if
        every pending order of its side fills as well."""
        room = self.net - self.pending_sell if side < 0 else -self.net - self.pending_buy
        return max(0.0, room)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    status: RiskStatus

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason}


def _direction(kind: Any, what: str) -> int:
    """+1 for a buy, -1 for a sell: MT5 numbers (even = buy for 0..7) or names (BUY, ORDER_TYPE_SELL_LIMIT)."""
    if isinstance(kind, str):
        name = kind.upper()
        if "BUY" in name:
            return 1
        if "SELL" in name:
            return -1
    elif isinstance(kind, int | float) and not isinstance(kind, bool) and float(kind).is_integer() \
            and 0 <= kind <= 7:
        return 1 if int(kind) % 2 == 0 else -1
    raise DataQualityError(f"{what}: unknown type {kind!r}")


def _volume(record: Mapping[str, Any], keys: tuple[str, ...], what: str) -> float:
    for key in keys:
        value = record.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            volume = float(value)
            if not math.isfinite(volume) or volume < 0:
                raise DataQualityError(f"{what}: volume {value!r} is not a lot count")
            return volume
    raise DataQualityError(f"{what}: a record lacks {' or '.join(keys)}")


def exposure_from_records(positions: Iterable[Mapping[str, Any]], orders: Iterable[Mapping[str, Any]]) -> Exposure:
    """Exposure from the broker's open positions and pending orders of one symbol (all owners)."""
    longs = shorts = buy = sell = 0.0
    for position in positions:
        volume = _volume(position, ("volume",), "position")
        if _direction(position.get("type"), "position") > 0:
            longs += volume
        else:
            shorts += volume
    for order in orders:
        volume = _volume(order, ("volume_current", "volume_initial", "volume"), "pending order")
        if _direction(order.get("type"), "pending order") > 0:
            buy += volume
        else:
            sell += volume
    return Exposure(long_positions=longs, short_positions=shorts, pending_buy=buy, pending_sell=sell)


# -- state transitions ---------------------------------------------------------------------------------
def initial_state(balance: float, now: dt.datetime, limits: RiskLimits) -> RiskState:
    return RiskState(peak_balance=balance, day_start_balance=balance, last_balance=balance, daily_pnl=0.0,
                     trading_day=trading_day(now, limits.day_offset_hours), updated_at=now)


def roll_day(state: RiskState, now: dt.datetime, limits: RiskLimits) -> RiskState:
    """A new trading day starts from the current balance with no PnL; the latched status stays."""
    day = trading_day(now, limits.day_offset_hours)
    if day == state.trading_day:
        return state
    return replace(state, trading_day=day, day_start_balance=state.last_balance, daily_pnl=0.0, updated_at=now)


def drawdown(state: RiskState, floating: float = 0.0) -> float:
    if state.peak_balance <= 0:
        return 1.0  # nothing left to lose: treat as a full drawdown
    return max(0.0, (state.peak_balance - (state.last_balance + floating)) / state.peak_balance)


def daily_loss(state: RiskState, floating: float = 0.0) -> float:
    pnl = state.daily_pnl + floating
    if state.day_start_balance <= 0:
        return 1.0 if pnl < 0 else 0.0
    return max(0.0, -pnl / state.day_start_balance)


def _levels(state: RiskState, limits: RiskLimits, floating: float) -> tuple[str | None, str | None]:
    """(breach reason, near-limit reason)."""
    dd, dl = drawdown(state, floating), daily_loss(state, floating)
    with_open = " incl. open positions" if floating else ""
    if dd >= limits.max_drawdown:
        return f"drawdown {dd:.2%}{with_open} reached max_drawdown {limits.max_drawdown:.2%}", None
    if dl >= limits.max_daily_loss:
        return f"daily loss {dl:.2%}{with_open} reached max_daily_loss {limits.max_daily_loss:.2%}", None
    if limits.reduce_at < 1.0 and dd >= limits.reduce_at * limits.max_drawdown:
        return None, f"drawdown {dd:.2%}{with_open} is within {1 - limits.reduce_at:.0%} of max_drawdown"
    if limits.reduce_at < 1.0 and dl >= limits.reduce_at * limits.max_daily_loss:
        return None, f"daily loss {dl:.2%}{with_open} is within {1 - limits.reduce_at:.0%} of max_daily_loss"
    return None, None


def latch_breach(state: RiskState, limits: RiskLimits, now: dt.datetime, floating: float = 0.0) -> RiskState:
    """HALTED, with the reason and time, when a loss limit is reached; unchanged otherwise."""
    breach, _ = _levels(state, limits, floating)
    if breach is None or state.status == RiskStatus.HALTED:
        return state
    return replace(state, status=RiskStatus.HALTED, reason=breach, halted_at=now, updated_at=now)


def status_of(state: RiskState, limits: RiskLimits, floating: float = 0.0) -> tuple[RiskStatus, str]:
    """The effective status: the latched one, or stricter when a limit is reached or near, or REDUCING
    while an order's fate is unknown (it may have opened a position nobody counted)."""
    if state.status == RiskStatus.HALTED:
        return RiskStatus.HALTED, state.reason
    breach, near = _levels(state, limits, floating)
    if breach is not None:
        return RiskStatus.HALTED, breach
    if state.unresolved:
        keys = ", ".join(key for key, _ in state.unresolved)
        return RiskStatus.REDUCING, f"order state unknown ({keys}): no new exposure until it is found at the " \
                                    f"broker or {CLEAR_HINT}"
    if state.unsettled:
        # The simple rule, not a loss bound: a stop-out or a gap may close a position beyond its stop-loss.
        tickets = ", ".join(str(u.ticket) for u in state.unsettled)
        return RiskStatus.REDUCING, f"closed position(s) {tickets} not booked (closing deal not in the broker's " \
                                    f"history yet): no new exposure until found or {SETTLE_HINT}"
    if state.status == RiskStatus.REDUCING:
        return RiskStatus.REDUCING, state.reason
    if near is not None:
        return RiskStatus.REDUCING, near
    return RiskStatus.ACTIVE, ""


def apply_trade(state: RiskState, profit: float, now: dt.datetime, limits: RiskLimits) -> RiskState:
    """Book a closed trade's profit (negative for a loss, net of costs) on the day it is reported."""
    return latch_breach(_add(roll_day(state, now, limits), profit, now), limits, now)


def _add(state: RiskState, profit: float, now: dt.datetime) -> RiskState:
    balance = state.last_balance + profit
    return replace(state, last_balance=balance, daily_pnl=state.daily_pnl + profit,
                   peak_balance=max(state.peak_balance, balance), updated_at=now)


def book_deals(state: RiskState, profits: Mapping[int, float], now: dt.datetime, limits: RiskLimits,
               position: int | None = None, keep: UnsettledPosition | None = None) -> tuple[RiskState, dict[int, float]]:
    """Book the closing deals (ticket -> profit net of costs) the state does not hold yet, and remember them
    in the same state; returns (state, the deals booked now). Deals booked before are never booked again.
    ``position`` (the position they closed) leaves ``unsettled`` in the same write; one an operator settled
    by hand (:func:`settle_by_hand`) books nothing more. ``keep`` instead (a position these deals close only
    in part, the rest not listed yet) stays, or becomes, unsettled as given, in the same write."""
    if keep is not None:
        position = keep.ticket
    if position is not None:
        if _by_hand(position) in state.booked_deals:
            return state, {}
        state = _without(state, position, now)
    if keep is not None:
        state = replace(state, unsettled=tuple(sorted((*state.unsettled, keep), key=lambda u: u.ticket)),
                        updated_at=now)
    held = state.booked_deals
    new = {int(t): float(p) for t, p in profits.items() if int(t) not in held}
    if not new:
        return state, {}
    return _remember(apply_trade(state, sum(new.values()), now, limits), new, now), new


def _by_hand(position: int) -> int:
    # Deal tickets are positive: a position settled by hand is remembered in ``booked`` as its negated ticket.
    return -abs(int(position))


def _remember(state: RiskState, tickets: Iterable[int], now: dt.datetime, prune: bool = True) -> RiskState:
    """Add ``tickets`` booked at ``now``; forget those booked BOOKED_RETENTION before ``now``, or before the
    oldest unsettled position was found gone: a look for its closing deals reads from up to OPENED_LOOKBACK
    before that, however long it stays unsettled, and may list the deals of it booked in part."""
    kept = state.booked
    if prune:
        horizon = min([now, *(u.since for u in state.unsettled)]) - BOOKED_RETENTION
        kept = tuple((t, at) for t, at in kept if at >= horizon)
    return replace(state, booked=tuple(sorted([*kept, *((int(t), now) for t in tickets)])))


def _without(state: RiskState, position: int, now: dt.datetime) -> RiskState:
    if position not in state.unsettled_positions:
        return state
    return replace(state, unsettled=tuple(u for u in state.unsettled if u.ticket != position), updated_at=now)


def hold_position(state: RiskState, item: UnsettledPosition, now: dt.datetime) -> RiskState:
    """Record a position gone without a closing deal in the history: new exposure waits until it is booked."""
    if item.ticket in state.unsettled_positions or _by_hand(item.ticket) in state.booked_deals:
        return state
    return replace(state, unsettled=tuple(sorted((*state.unsettled, item), key=lambda u: u.ticket)), updated_at=now)


def settle_by_hand(state: RiskState, position: int, profit: float, now: dt.datetime, limits: RiskLimits,
                   by: str) -> RiskState:
    """An operator books an unsettled position's ``profit`` (net of costs, from the terminal) and lifts its
    block; its closing deals, should they reach the history later, are never booked on top. A breach is
    latched by the engine's next check, with its configured limits (``limits`` here only places the day)."""
    if position not in state.unsettled_positions:
        raise ValueError(f"position {position} is not unsettled")
    if not math.isfinite(profit):
        raise ValueError(f"profit must be a finite number, got {profit!r}")
    state = _add(roll_day(_without(state, position, now), now, limits), profit, now)
    # No pruning here: ``now`` is the operator's wall clock, while the engine stamps its bookings with its own
    # (broker time in a replay); the engine's next booking prunes on its clock.
    return replace(_remember(state, [_by_hand(position)], now, prune=False), changed_by=by, changed_at=now)


def hold_order(state: RiskState, key: str, note: str, now: dt.datetime) -> RiskState:
    """Record an order whose fate is unknown: new exposure waits until :func:`release_order`."""
    if key in state.unresolved_orders:
        return state
    return replace(state, unresolved=tuple(sorted((*state.unresolved, (key, note)))), updated_at=now)


def release_order(state: RiskState, key: str, now: dt.datetime, by: str | None = None) -> RiskState:
    """The order's fate is known (found at the broker, or an operator checked the terminal: ``by``)."""
    if key not in state.unresolved_orders:
        return state
    left = tuple(item for item in state.unresolved if item[0] != key)
    if by is None:
        return replace(state, unresolved=left, updated_at=now)
    return replace(state, unresolved=left, changed_by=by, changed_at=now, updated_at=now)


def operator_set(state: RiskState, status: RiskStatus, by: str, now: dt.datetime, limits: RiskLimits,
                 note: str = "") -> RiskState:
    """An operator's action, recorded with who and when. A reset to ACTIVE also rebases the peak and the
    day's start on the current balance: the losses so far are accepted, the limits count from here."""
    by = by.strip()
    if not by:
        raise ValueError("an operator action needs a name (--by NAME): the store records who did it")
    state = roll_day(state, now, limits)
    text = f"{status.name.lower()} by {by}" + (f": {note}" if note else "")
    if status == RiskStatus.ACTIVE:
        balance = state.last_balance
        return replace(state, status=status, reason=text, peak_balance=balance, day_start_balance=balance,
                       daily_pnl=0.0, halted_at=None, changed_by=by, changed_at=now, updated_at=now)
    halted_at = now if status == RiskStatus.HALTED else state.halted_at
    return replace(state, status=status, reason=text, halted_at=halted_at, changed_by=by, changed_at=now,
                   updated_at=now)


# -- decisions ---------------------------------------------------------------------------------------------
def parse_side(side: str | None) -> int | None:
    if side is None:
        return None
    name = str(side).strip().lower()
    if name not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    return 1 if name == "buy" else -1


def decide_open(limits: RiskLimits, status: RiskStatus, status_reason: str, exposure: Exposure, volume: float,
                side: int | None) -> Decision:
    """May an order of ``volume`` lots (``side`` +1 buy, -1 sell, None unknown) be sent now?

    Without a side the order must fit the cap both ways, and REDUCING refuses it (it cannot tell whether
    the order reduces the position).
    """
    if isinstance(volume, bool) or not isinstance(volume, int | float) or not math.isfinite(volume) or volume <= 0:
        return Decision(False, f"volume must be a positive number of lots, got {volume!r}", status)
    if status == RiskStatus.HALTED:
        return Decision(False, f"HALTED: {status_reason}; no new exposure until {RESET_HINT}", status)
    cap = limits.max_position_size
    if status == RiskStatus.REDUCING:
        if side is None:
            return Decision(False, f"REDUCING ({status_reason}): only orders that reduce the position pass; give "
                                   "side='buy' or 'sell'", status)
        room = exposure.reducible(side)
        if volume > room + VOLUME_EPS:
            return Decision(False, f"REDUCING ({status_reason}): a {_name(side)} of {volume:g} lots does not only "
                                   f"reduce the net position {exposure.net:g} (room {room:g} lots after pending "
                                   "orders)", status)
    sides = (side,) if side is not None else (1, -1)
    for s in sides:
        after = exposure.with_order(s, volume).side(s)
        if after > cap + VOLUME_EPS:
            return Decision(False, f"{_name(s)} exposure would reach {after:g} lots (positions and pending orders "
                                   f"of every owner), over max_position_size {cap:g}", status)
    worst = max(exposure.with_order(s, volume).side(s) for s in sides)
    verb = "reduces the net position" if status == RiskStatus.REDUCING else "within limits"
    return Decision(True, f"{verb}: {_name(side) if side else 'either'} side at most {worst:g} of {cap:g} lots",
                    status)


def _name(side: int | None) -> str:
    return "buy" if side and side > 0 else "sell"
