"""The live loop's orders: size, gate, write ahead, send, record the answer.

An entry is sized as the backtest sizes it (:func:`engine.trading.fills.size_lots` for ``equity`` and
``lots``, the RiskManager's :meth:`calculate_position_size` for ``risk``), passes the RiskManager's
:meth:`can_open_position` (a refusal is recorded with its reason, never raised), and goes out through
``send_order`` with its stop-loss and take-profit. Levels are set from the price the position will close
at (the bid for a long, the ask for a short), which is where MT5 triggers them: with bars of bid prices, a
short's levels then trigger on the same bars as the backtest's.

Every order has a deterministic Idempotency-Key (session, bar, action), so its comment identifies it for
reconciliation across restarts. Its request is written to the audit trail before it is sent.

An order whose fate is unknown (OrderStateUnknownError: the answer was lost and no look could settle it) is
held in the RiskManager's persisted state: new exposure is refused, in this process and after a restart,
until a later look finds it at the broker (:meth:`OrderDesk.recheck`, every bar) or an operator clears it
(``python -m engine.risk_cli clear-order``). Exits still go out.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from engine.errors import EngineError, OrderStateUnknownError
from engine.trading.audit import AuditLog
from engine.trading.backtest import BacktestSettings
from engine.trading.broker import QuotingBroker
from engine.trading.execution import MAX_REPRICES, OrderResult, close_position, order_comment, send_order
from engine.trading.fills import SIZE_EQUITY, SIZE_LOTS, size_lots, step_decimals
from engine.trading.positions import Holding
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import UnsettledPosition
from engine.trading.signals import stop_levels
from engine.trading.sizing import SymbolSpec

log = logging.getLogger("engine.trading.live")


class LiveBroker(QuotingBroker, Protocol):
    """Order execution (engine.trading.broker) plus the reads the loop reconciles with (MT5RestClient)."""

    def positions(self, symbol: str | None = None) -> Any: ...

    def account_info(self) -> Mapping[str, Any]: ...

    def history_deals(self, start: Any = None, end: Any = None, symbol: str = ...) -> Any: ...


class RiskGate(Protocol):
    """The seed's RiskManager API (engine.trading.risk.RiskManager)."""

    limits: RiskLimits

    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> dict[str, Any]: ...

    def calculate_position_size(self, symbol: str, stop_loss: float, *, side: str | None = None,
                                price: float | None = None) -> float: ...

    def update_after_trade(self, profit: float) -> None: ...

    def book_deals(self, profits: Mapping[int, float], position: int | None = None,
                   keep: UnsettledPosition | None = None) -> Any:
        """engine.trading.risk.Booking: ``deals``, ``profit``, ``persisted``; each deal booked once; ``keep``
        holds a position the deals close only in part."""
        ...

    def hold_position(self, item: UnsettledPosition) -> bool: ...

    def unsettled_positions(self) -> dict[int, UnsettledPosition]: ...

    def hold_order(self, key: str, note: str) -> bool: ...

    def release_order(self, key: str, by: str | None = None) -> bool: ...

    def unresolved_orders(self) -> dict[str, str]: ...

    def get_risk_metrics(self) -> dict[str, Any]: ...


def order_key(session: str, bar_time: dt.datetime, action: str) -> str:
    """The Idempotency-Key of the order ``action`` decided at ``bar_time``: the same after any restart."""
    return f"{session}/{bar_time.isoformat()}/{action}"


def comments_of(key: str) -> list[str]:
    """Every comment an order sent under ``key`` may carry (send_order re-prices under derived keys)."""
    return [order_comment(key)] + [order_comment(f"{key}/reprice-{i}") for i in range(1, MAX_REPRICES + 1)]


class OrderDesk:
    """Sends the loop's orders. ``on_sent`` is called right before each request leaves (latency probe)."""

    def __init__(self, broker: LiveBroker, risk: RiskGate, audit: AuditLog, *, symbol: str, session: str,
                 magic: int, deviation: int, decision: BacktestSettings,
                 on_sent: Callable[[], None] | None = None) -> None:
        self.broker, self.risk, self.audit = broker, risk, audit
        self.symbol, self.session, self.magic, self.deviation = symbol, session, int(magic), int(deviation)
        self.decision = decision
        self.on_sent = on_sent or (lambda: None)
        self.counts = {"orders": 0, "orders_failed": 0, "orders_unknown": 0, "risk_refusals": 0}
        # Orders of unknown fate whose hold the risk store has not taken yet (key -> note): shown in every
        # reconcile record, so a restart holds them again instead of trusting an unwritten hold.
        self.unheld: dict[str, str] = {}

    # -- entries ---------------------------------------------------------------------------------------------
    def open(self, bar_time: dt.datetime, side: int, strength: float, atr: float) -> bool:
        """Open ``side`` (+1 long, -1 short) for the decision of ``bar_time``; True when it filled."""
        try:
            info = self.broker.symbol_info(self.symbol)
            account = self.broker.account_info()
            tick = self.broker.latest_tick(self.symbol)
            spec = SymbolSpec.from_info(info, account.get("currency"))
        except EngineError as exc:
            return self._refuse(bar_time, side, 0.0, f"cannot read the account or the symbol: {exc}")
        bid, ask = float(tick["bid"]), float(tick["ask"])
        entry, exit_side = (ask, bid) if side > 0 else (bid, ask)
        sl, tp = self._levels(side, exit_side, atr, spec, int(info.get("digits", 2)))
        s = self.decision
        if (s.stop_loss is not None and sl is None) or (s.take_profit is not None and tp is None):
            # as the backtest: a trade is never opened without the stops it is configured with
            return self._refuse(bar_time, side, 0.0, "no stop level yet (the ATR is still warming up)")
        lots, why = self._size(side, strength, entry, sl, spec, float(account["equity"]))
        if lots <= 0:
            return self._refuse(bar_time, side, 0.0, why)
        name = "buy" if side > 0 else "sell"
        gate = self.risk.can_open_position(self.symbol, lots, name)
        if not gate.get("allowed"):
            return self._refuse(bar_time, side, lots, str(gate.get("reason")))
        key = order_key(self.session, bar_time, "open")
        self.audit.add("order_request", bar_time, key=key, comment=order_comment(key), action="open", side=side,
                       volume=lots, sl=sl, tp=tp, quote_bid=bid, quote_ask=ask, sizing=why)
        self.audit.flush()  # write-ahead: a restart finds this request even if no answer ever comes
        self.on_sent()
        self.counts["orders"] += 1
        answer = send_order(self.symbol, lots, name, client=self.broker, sl=sl, tp=tp, magic=self.magic,
                            deviation=self.deviation, idempotency_key=key, risk=self.risk)
        unknown = bool(answer.get("unknown"))
        self.audit.add("order_answer", bar_time, key=key, success=bool(answer.get("success")),
                       data=answer.get("data"), error=answer.get("error"), warning=answer.get("warning"),
                       **({"unknown": True} if unknown else {}))
        if not answer.get("success"):
            self.counts["orders_failed"] += 1
            if unknown:
                self._hold(bar_time, key, str(answer.get("error")))
            else:
                log.warning("open %s %s lots at %s failed: %s", name, lots, bar_time, answer.get("error"))
            return False
        data = answer["data"]
        self.audit.add("fill", bar_time, key=key, action="open", side=side, volume=data["volume"],
                       price=data["price"], deal=data["deal"], order=data["order"], sl=sl, tp=tp,
                       reference=entry, reconciled=bool(answer.get("reconciled", False)))
        return True

    def _levels(self, side: int, exit_price: float, atr: float, spec: SymbolSpec,
                digits: int) -> tuple[float | None, float | None]:
        s = self.decision
        unit = atr if s.stop_unit == "atr" else spec.point
        d_sl = unit * s.stop_loss if s.stop_loss is not None else math.nan
        d_tp = unit * s.take_profit if s.take_profit is not None else math.nan
        sl, tp = stop_levels(side, exit_price, d_sl, d_tp)
        return (None if not math.isfinite(sl) else round(sl, digits), None if not math.isfinite(tp) else round(tp, digits))

    def _size(self, side: int, strength: float, entry: float, sl: float | None, spec: SymbolSpec,
              equity: float) -> tuple[float, str]:
        s, limits = self.decision, self.risk.limits
        if s.sizing == "risk":
            assert sl is not None, "sizing=risk requires a stop_loss (BacktestSettings checks it)"
            lots = self.risk.calculate_position_size(self.symbol, sl, side="buy" if side > 0 else "sell",
                                                     price=entry)
            return float(lots), str(getattr(lots, "reason", ""))
        mode = SIZE_EQUITY if s.sizing == "equity" else SIZE_LOTS
        ceiling = min(spec.volume_max, limits.max_position_size)
        sizing = np.array([s.equity_fraction, s.fixed_lots, limits.risk_per_trade, spec.volume_min, ceiling,
                           spec.volume_step, spec.point, spec.point_value, spec.tick_value / spec.tick_size])
        lots = float(size_lots(mode, float(equity), float(strength), float(entry), math.nan, sizing,
                               step_decimals(spec.volume_step)))
        if lots <= 0:
            return 0.0, f"sizing={s.sizing} gives less than the minimum lot {spec.volume_min} (equity {equity:.2f})"
        return lots, f"sizing={s.sizing}: {lots} lots at {entry} (equity {equity:.2f})"

    def _refuse(self, bar_time: dt.datetime, side: int, lots: float, reason: str) -> bool:
        self.counts["risk_refusals"] += 1
        self.audit.add("risk_refusal", bar_time, side=side, volume=lots, reason=reason)
        log.info("no entry at %s: %s", bar_time, reason)
        return False

    # -- exits ------------------------------------------------------------------------------------------------
    def close(self, bar_time: dt.datetime, holding: Holding, action: str = "close") -> None:
        """Close every position of ``holding`` (the decision of ``bar_time``, or ``flatten`` on stop)."""
        for ticket, side in holding.tickets.items():
            key = order_key(self.session, bar_time, f"{action}-{ticket}")
            self.audit.add("order_request", bar_time, key=key, comment=order_comment(key), action=action,
                           ticket=ticket, side=-side, volume=holding.volumes[ticket])
            self.audit.flush()
            self.on_sent()
            self.counts["orders"] += 1
            try:
                result = close_position(self.broker, ticket, magic=self.magic, deviation=self.deviation,
                                        idempotency_key=key)
            except EngineError as exc:
                self.counts["orders_failed"] += 1
                unknown = isinstance(exc, OrderStateUnknownError)
                self.audit.add("order_answer", bar_time, key=key, success=False, error=f"{type(exc).__name__}: {exc}",
                               **({"unknown": True} if unknown else {}))
                if unknown:
                    self._hold(bar_time, key, f"{type(exc).__name__}: {exc}")
                else:
                    log.warning("%s of position %s at %s failed: %s", action, ticket, bar_time, exc)
                continue
            self.audit.add("order_answer", bar_time, key=key, success=True, data=_result(result))

    # -- orders of unknown fate, restarts -------------------------------------------------------------------------
    def _hold(self, bar_time: dt.datetime, key: str, error: str) -> None:
        self.counts["orders_unknown"] += 1
        when = "a previous run" if bar_time is None else bar_time.isoformat()
        held = self._hold_in_store(key, f"no answer for the order of {when} ({error})")
        self.audit.add("risk_refusal", bar_time, side=0, volume=0.0, unknown_order=key, persisted=held,
                       reason=f"order {key}: fate UNKNOWN ({error}); new entries are blocked until it is found at "
                              f"the broker or an operator clears it")
        log.error("ORDER FATE UNKNOWN %s (%s): new entries are blocked until a later look finds it at the broker, "
                  "or after checking the terminal: python -m engine.risk_cli clear-order --key %s --order '%s' "
                  "--by NAME", key, error, self.session, key)

    def _hold_in_store(self, key: str, note: str) -> bool:
        held = self.risk.hold_order(key, note)
        if held:
            self.unheld.pop(key, None)
        else:
            self.unheld[key] = note
        return held

    def describe(self) -> dict[str, Any]:
        """What the reconcile record shows of the orders whose hold is not stored yet."""
        return {"unheld_orders": dict(self.unheld)} if self.unheld else {}

    def _look(self, key: str) -> Mapping[str, Any] | None:
        """The broker's record of the order sent under ``key`` (an open, or the close of the position its key
        names), or None when nothing carries its comment."""
        action = key.rsplit("/", 1)[-1]
        position = int(action.rsplit("-", 1)[1]) if action.startswith(("close-", "flatten-")) else None
        for comment in comments_of(key):
            found = self.broker.find_order(comment, magic=None if position else self.magic, position=position)
            if found is not None:
                return found
        return None

    def _found(self, bar_time: dt.datetime | None, key: str, found: Mapping[str, Any], side: Any = None,
               **extra: Any) -> None:
        result = OrderResult.from_payload(found, key, reconciled=True)
        self.audit.add("order_answer", bar_time, key=key, success=result.ok, reconciled=True, data=_result(result),
                       **extra)
        if result.ok and key.endswith("/open"):
            self.audit.add("fill", bar_time, key=key, action="open", side=side, volume=result.volume, price=result.price,
                           deal=result.deal, order=result.order, reconciled=True)

    def recheck(self, bar_time: dt.datetime | None) -> None:
        """Look again for this session's orders of unknown fate; lift the block of each one found. A hold the
        store has not taken yet (or that a previous run never wrote) is written again first."""
        for key, note in list(self.unheld.items()):
            self._hold_in_store(key, note)
        for key in [k for k in self.risk.unresolved_orders() if k.startswith(f"{self.session}/")]:
            try:
                found = self._look(key)
            except EngineError as exc:
                log.warning("order %s still of unknown fate: the look failed (%s)", key, exc)
                continue
            if found is None:
                continue  # not found is not "not executed" here: the block stays until found or cleared
            self._found(bar_time, key, found, resolved=True)
            self.risk.release_order(key)
            self.unheld.pop(key, None)
            log.warning("order %s of unknown fate found at the broker; its block on new entries is lifted", key)

    def resolve(self, request: Mapping[str, Any]) -> None:
        """Settle an order request that a killed process never heard back about: look for it at the broker
        (magic + comment, and the position for a close) and record what became of it. Never resend it. Not
        found is not "not executed" (a request cut off mid-send may still reach the broker, and a process
        restarted at once looks before it does), so then, as when the broker cannot be read, its fate is
        unknown and new entries wait for it (:meth:`recheck` every bar, or an operator's ``clear-order``)."""
        key, bar_time = str(request["key"]), request.get("bar_time")
        try:
            found = self._look(key)
        except EngineError as exc:
            self.audit.add("order_answer", bar_time, key=key, success=False, unknown=True, reconciled=True,
                           error=f"{type(exc).__name__}: {exc}")
            self._hold(bar_time, key, f"no answer before a restart and the broker cannot be read: {exc}")
            return
        if found is None:
            error = "no trace at the broker after a restart (not found is not 'not executed')"
            self.audit.add("order_answer", bar_time, key=key, success=False, unknown=True, reconciled=True,
                           error=error)
            self._hold(bar_time, key, error)
            return
        self._found(bar_time, key, found, side=request.get("side"))


def _result(result: OrderResult) -> dict[str, Any]:
    return {"retcode": result.retcode, "deal": result.deal, "order": result.order, "volume": result.volume,
            "price": result.price, "reconciled": result.reconciled}


__all__ = ["LiveBroker", "OrderDesk", "RiskGate", "comments_of", "order_key"]
