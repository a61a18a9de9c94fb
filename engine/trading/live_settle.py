"""Settling the positions that vanished from the broker: their closing deals booked with the RiskManager, once.

A position gone since the last look was closed by its stop-loss or take-profit, by the loop, or by someone
else; its closing deals in the broker's history say which, and what it made. ``RiskManager.book_deals`` books
each deal exactly once: the booked tickets live in the risk state record, written with the balances.

MT5's deal history can lag behind its positions: a position may be gone before its closing deal is listed.
Such a position is *unsettled*: held in the risk state (``RiskManager.hold_position``: persisted, so a restart
and every other process reading the state know it), which puts the RiskManager in REDUCING (new entries are
refused, exits and reduce-only orders pass), since its loss is missing from the balances the limits are
checked on. Every bar its closing deals are looked for again, from its open time when known (at most
``OPENED_LOOKBACK`` back, else ``SETTLE_LOOKBACK``); once found they
are booked and the position released in one write. A position closed in pieces (partial closes, a stop-out
filled in parts) may be gone with only some of its closing deals listed: those are booked (each once, by its
ticket) and the position stays held until the closing volume covers its size (its opening deals' volume, else
its last seen lots; within half the symbol's volume step), then it is released. After ``alarm_seconds`` (broker time) without them, an
ERROR names the operator's command (``python -m engine.risk_cli settle``), repeated every ``alarm_seconds``:
an unsettled position is never dropped silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from engine.errors import EngineError
from engine.trading.audit import AuditLog
from engine.trading.live_orders import LiveBroker, RiskGate
from engine.trading.positions import Closed, Holding, closed_positions, records
from engine.trading.risk_rules import OPENED_LOOKBACK, SETTLE_LOOKBACK
from engine.trading.risk_state import UnsettledPosition
from engine.trading.sizing import VOLUME_EPS

log = logging.getLogger("engine.trading.live")

DEAL_MARGIN = pd.Timedelta(days=1)  # around a look's window: clock and server-offset slack, never a missed deal
FALLBACK_TOLERANCE = 1e-6  # lots, when the volume step is unreadable: float sums of broker volumes, no more


class Settlement:
    """Books the closing deals of this strategy's vanished positions; holds those whose deals are missing.

    ``unsettled`` (ticket -> side) are positions whose booking or hold the risk store has not taken yet: the
    loop keeps them among its positions (and in its trail), so the next look, or a restart, settles them again.
    ``now`` is the broker's clock (UTC)."""

    def __init__(self, broker: LiveBroker, risk: RiskGate, audit: AuditLog, *, symbol: str, session: str,
                 alarm_seconds: float, now: Callable[[], pd.Timestamp]) -> None:
        self.broker, self.risk, self.audit = broker, risk, audit
        self.symbol, self.session, self.alarm_seconds, self.now = symbol, session, float(alarm_seconds), now
        self.unsettled: dict[int, int] = {}
        self._alarmed: dict[int, pd.Timestamp] = {}  # ticket -> when its last ERROR was logged
        self._partial_logged: set[int] = set()  # partly booked positions whose refusal is in the trail
        self._volume_tolerance: float | None = None  # read from the symbol's volume step when first needed

    def describe(self) -> dict[str, Any]:
        """What the reconcile record shows of the positions not settled yet."""
        out: dict[str, Any] = {}
        if self.unsettled:
            out["unsettled"] = {str(t): s for t, s in self.unsettled.items()}
        awaiting = sorted(self.risk.unsettled_positions())
        if awaiting:
            out["awaiting_deals"] = awaiting
        return out

    def settle(self, at: dt.datetime | None, vanished: Mapping[int, int], last: Holding) -> list[Closed]:
        """Book the positions of ``vanished`` (ticket -> side) that were open at the last look (``last``);
        returns the ones a stop closed, seen for the first time (they set the loop's decision state)."""
        now = self.now()
        held = self.risk.unsettled_positions()
        # back to the earliest open time known too: partial closes long before the position vanished count
        opened = [pd.Timestamp(t) for t in (*(last.opened.get(k) for k in vanished),
                                             *(held[k].opened for k in vanished if k in held)) if t is not None]
        start = max(min([now - SETTLE_LOOKBACK, *(t - DEAL_MARGIN for t in opened)]), now - OPENED_LOOKBACK)
        deals = self.broker.history_deals(start, now + DEAL_MARGIN, symbol=self.symbol)
        stops = []
        for closed in closed_positions(vanished, records(deals)):
            item = held.get(closed.ticket) or UnsettledPosition(
                closed.ticket, closed.side, now.to_pydatetime(), last.volumes.get(closed.ticket),
                last.opened.get(closed.ticket))
            if not closed.deals:
                self._hold(at, closed, item)
                continue
            first = closed.ticket not in self.unsettled and item.booked_volume <= 0
            self._settle(at, closed, item, **({} if first else {"retry": True}))
            if first and closed.stopped:
                stops.append(closed)
        return stops

    def recheck(self, at: dt.datetime | None) -> list[Closed]:
        """Look again for the closing deals of the unsettled positions; book those found. Returns the ones a
        stop closed. Costs nothing while no position is unsettled (no broker, no store access)."""
        if not self.risk.unsettled_positions():
            return []
        self.risk.get_risk_metrics()  # re-reads the stored state: an operator may have settled one meanwhile
        held = self.risk.unsettled_positions()
        if not held:
            return []
        now = self.now()
        start = min(_look_from(item) for item in held.values())
        try:
            deals = records(self.broker.history_deals(start, now + DEAL_MARGIN, symbol=self.symbol))
        except EngineError as exc:
            log.warning("closing deals of unsettled positions %s not looked for: %s", sorted(held), exc)
            deals = []
        stops = []
        for closed in closed_positions({t: item.side for t, item in held.items()}, deals):
            item = held[closed.ticket]
            if not closed.deals:
                self._alarm(at, item, now)
                continue
            # a stop is counted when its first closing deals are seen, not again when the rest turns up
            seen = item.booked_volume > 0 or closed.ticket in self._partial_logged
            if self._settle(at, closed, item, resolved=True):
                self._alarmed.pop(closed.ticket, None)
                log.warning("closing deals of position %s found in the history: %.2f booked", closed.ticket,
                            closed.profit)
            else:
                self._alarm(at, item, now)
            if closed.stopped and not seen:
                stops.append(closed)
        return stops

    def _settle(self, at: dt.datetime | None, closed: Closed, item: UnsettledPosition, **extra: Any) -> bool:
        """Book the closing deals found; True when they cover the position (it is released), False when it is
        held: partly closed, the rest of its closing deals not listed yet (a stop-out in pieces, or partial
        closes whose last deal lags). Each deal is booked once either way, by its ticket."""
        left = closed.remaining(item.volume, self._tolerance())
        if not left:  # covered, or its size unknown (nothing to compare with: what is found is what it made)
            if left is None:
                log.warning("position %s: its size is unknown (no opening deal listed, not seen since a restart); "
                            "its closing deals found (%g lots) are taken as all of them", closed.ticket, closed.volume)
            self._book(at, closed, **extra)
            return True
        keep = dataclasses.replace(item, booked_volume=closed.volume)
        booking = self.risk.book_deals(closed.deal_profits, keep=keep)
        if booking.persisted:
            self.unsettled.pop(closed.ticket, None)
        else:
            self.unsettled[closed.ticket] = closed.side
        if booking.deals or closed.volume > item.booked_volume + self._tolerance() or not booking.persisted:
            self.audit.add("fill", at, action="exit", ticket=closed.ticket, side=-closed.side, reason=closed.reason,
                           price=closed.price, profit=closed.profit, booked_deals=list(booking.deals),
                           booked_profit=booking.profit, booking_saved=booking.persisted, partial=True,
                           closed_volume=closed.volume, remaining_volume=left, **extra)
        if item.booked_volume <= 0 and closed.ticket not in self._partial_logged:
            self._partial_logged.add(closed.ticket)
            self.audit.add("risk_refusal", at, side=0, volume=0.0, unsettled_position=closed.ticket,
                           persisted=booking.persisted, partial=True,
                           reason=f"position {closed.ticket} is gone but its closing deals listed cover {closed.volume:g} "
                                  f"lots, {left:g} short of its size: new entries are blocked until the rest is "
                                  "found and booked")
            log.warning("position %s is gone but its closing deals listed cover only %g lots (%g missing); %s "
                        "booked, new entries are blocked until the rest is", closed.ticket, closed.volume, left,
                        sorted(booking.deals))
        return False

    def _tolerance(self) -> float:
        """Half the symbol's volume step: closing volumes within it of the position's size cover it."""
        if self._volume_tolerance is None:
            try:
                spec = getattr(self.broker, "symbol_spec", None)  # MT5RestClient's remembered contract
                info = spec(self.symbol) if callable(spec) else self.broker.symbol_info(self.symbol)
                self._volume_tolerance = max(float(info["volume_step"]) / 2, VOLUME_EPS)
            except (EngineError, KeyError, TypeError, ValueError) as exc:
                log.warning("volume step of %s unreadable (%s): closing volumes compared to %g lots", self.symbol,
                            exc, FALLBACK_TOLERANCE)
                return FALLBACK_TOLERANCE
        return self._volume_tolerance

    def _book(self, at: dt.datetime | None, closed: Closed, **extra: Any) -> None:
        """Book ``closed``'s deals and release it when it was unsettled, in one write of the risk state."""
        booking = self.risk.book_deals(closed.deal_profits, position=closed.ticket)
        if booking.persisted:
            self.unsettled.pop(closed.ticket, None)
            self._partial_logged.discard(closed.ticket)
        else:
            self.unsettled[closed.ticket] = closed.side
        self.audit.add("fill", at, action="exit", ticket=closed.ticket, side=-closed.side, reason=closed.reason,
                       price=closed.price, profit=closed.profit, booked_deals=list(booking.deals),
                       booked_profit=booking.profit, booking_saved=booking.persisted, **extra)

    def _hold(self, at: dt.datetime | None, closed: Closed, item: UnsettledPosition) -> None:
        """The position is gone but no closing deal is listed yet: hold it (persisted), blocking new entries."""
        known = closed.ticket in self.risk.unsettled_positions()
        held = self.risk.hold_position(item)
        if held:
            self.unsettled.pop(closed.ticket, None)
        else:
            self.unsettled[closed.ticket] = closed.side
        if known:
            return
        self.audit.add("fill", at, action="exit", ticket=closed.ticket, side=-closed.side, reason="unknown",
                       price=None, profit=None, booked_deals=[], booked_profit=0.0, booking_saved=False,
                       deals_missing=True)
        self.audit.add("risk_refusal", at, side=0, volume=0.0, unsettled_position=closed.ticket, persisted=held,
                       reason=f"position {closed.ticket} is gone but its closing deal is not in the broker's history "
                              "yet: new entries are blocked until it is found and booked")
        log.warning("position %s (%s) is gone but its closing deal is not in the history yet; new entries are "
                    "blocked until it is booked", closed.ticket, item.describe())

    def _alarm(self, at: dt.datetime | None, item: UnsettledPosition, now: pd.Timestamp) -> None:
        """An ERROR, every ``alarm_seconds`` once the position has been unsettled that long."""
        age = (now - item.since).total_seconds()
        last = self._alarmed.get(item.ticket)
        if age < self.alarm_seconds or (last is not None and (now - last).total_seconds() < self.alarm_seconds):
            return
        self._alarmed[item.ticket] = now
        command = (f"python -m engine.risk_cli --key {getattr(self.risk, 'key', self.session)} settle "
                   f"--position {item.ticket} --profit PROFIT --by NAME")
        self.audit.add("risk_refusal", at, side=0, volume=0.0, unsettled_position=item.ticket, overdue=True,
                       seconds=age, reason=f"position {item.ticket} unsettled for {age:.0f}s; after reading its "
                                           f"profit (net of costs) on the terminal: {command}")
        log.error("POSITION %s UNSETTLED for %.0f s (%s): its closing deal is still not in the broker's history, "
                  "so its loss is not counted and new entries stay blocked. Read its profit net of commission and "
                  "swap on the terminal, then: %s", item.ticket, age, item.describe(), command)


def _look_from(item: UnsettledPosition) -> pd.Timestamp:
    """Where the look for a position's closing deals starts: its open time when known (never further back
    than OPENED_LOOKBACK before it was found gone), else SETTLE_LOOKBACK before that."""
    since = pd.Timestamp(item.since)
    if item.opened is None:
        return since - SETTLE_LOOKBACK
    return max(since - OPENED_LOOKBACK, pd.Timestamp(item.opened) - DEAL_MARGIN)


__all__ = ["DEAL_MARGIN", "Settlement"]
