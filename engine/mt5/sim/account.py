"""The simulated hedging account's books: balance, positions, pending orders, order history and deals.

How orders fill is engine.mt5.sim.fills; this module keeps the books and shows them in the contract's
shapes. Not thread-safe on its own: SimMarket calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.mt5 import contract
from engine.mt5.sim.settings import SimSettings


@dataclass
class Position:
    ticket: int
    type: int
    volume: float
    price_open: float
    time_s: int
    magic: int
    comment: str
    symbol: str
    sl: float = 0.0
    tp: float = 0.0
    time_update_s: int = 0
    reason: int = 3  # POSITION_REASON_EXPERT: opened by a program


@dataclass
class PendingOrder:
    ticket: int
    type: int
    volume: float
    price: float
    time_setup: int
    magic: int
    comment: str
    symbol: str
    sl: float = 0.0
    tp: float = 0.0
    state: int = contract.ORDER_STATE_PLACED
    time_done: int = 0
    position_id: int = 0


class Account:
    """``quote()`` gives (bid, ask, time_msc) and ``now()`` the server time in epoch seconds."""

    def __init__(self, settings: SimSettings, quote: Callable[[], tuple[float, float, int]],
                 now: Callable[[], int]) -> None:
        self.settings = settings
        self.quote = quote
        self.now = now
        self.balance = float(settings.balance)
        self._next_ticket = 1_000_001
        self.positions: dict[int, Position] = {}
        self.pending: dict[int, PendingOrder] = {}
        self.history_orders: list[dict[str, Any]] = []
        self.deals: list[dict[str, Any]] = []
        # Fault hook (engine.mt5.sim.faults.Faults.deal_delay): seconds a new deal stays out of the history.
        self.deal_delay: Callable[[dict[str, Any]], float] | None = None
        self._listed_from: dict[int, float] = {}  # deal ticket -> server time it appears in the history

    # -- views ---------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        s = self.settings
        profit = sum(self.profit(p) for p in self.positions.values())
        margin = sum(self.margin(p.volume, p.price_open) for p in self.positions.values())
        equity = self.balance + profit
        return {"login": s.login, "name": "engine simulator", "server": s.trade_server, "currency": s.currency,
                "leverage": s.leverage, "trade_mode": 0, "balance": round(self.balance, 2),
                "equity": round(equity, 2), "profit": round(profit, 2), "margin": round(margin, 2),
                "margin_free": round(equity - margin, 2),
                "margin_level": round(equity / margin * 100, 2) if margin else 0.0}

    def position_records(self, symbol: str | None) -> list[dict[str, Any]]:
        return [self._position_dict(p) for p in self.positions.values() if symbol is None or p.symbol == symbol]

    def pending_records(self, symbol: str | None) -> list[dict[str, Any]]:
        return [self._order_dict(o) for o in self.pending.values() if symbol is None or o.symbol == symbol]

    def deals_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        lo, hi = contract.epoch_s(start), contract.epoch_s(end)
        now = self.now() if self._listed_from else 0
        return [dict(d) for d in self.deals
                if lo <= d["time"] <= hi and self._listed_from.get(d["ticket"], 0) <= now]

    def orders_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        lo, hi = contract.epoch_s(start), contract.epoch_s(end)
        return [dict(o) for o in self.history_orders if lo <= o["time_setup"] <= hi]

    # -- accounting ------------------------------------------------------------------------------------------
    def margin(self, volume: float, price: float) -> float:
        return volume * self.settings.contract_size * price / self.settings.leverage

    def profit(self, p: Position, price: float | None = None) -> float:
        bid, ask, _ = self.quote()
        px = price if price is not None else (bid if p.type == contract.POSITION_TYPE_BUY else ask)
        sign = 1.0 if p.type == contract.POSITION_TYPE_BUY else -1.0
        return sign * (px - p.price_open) * p.volume * self.settings.contract_size

    def free_margin(self) -> float:
        profit = sum(self.profit(p) for p in self.positions.values())
        margin = sum(self.margin(p.volume, p.price_open) for p in self.positions.values())
        return self.balance + profit - margin

    def _position_dict(self, p: Position) -> dict[str, Any]:
        bid, ask, _ = self.quote()
        updated = max(p.time_update_s, p.time_s)
        return {"ticket": p.ticket, "time": p.time_s, "time_msc": p.time_s * 1000, "time_update": updated,
                "time_update_msc": updated * 1000, "type": p.type, "magic": p.magic, "identifier": p.ticket,
                "reason": p.reason, "volume": p.volume, "price_open": p.price_open, "sl": p.sl, "tp": p.tp,
                "price_current": bid if p.type == contract.POSITION_TYPE_BUY else ask, "swap": 0.0,
                "profit": round(self.profit(p), 2), "symbol": p.symbol, "comment": p.comment, "external_id": ""}

    def _order_dict(self, o: PendingOrder) -> dict[str, Any]:
        bid, ask, _ = self.quote()
        return {"ticket": o.ticket, "time_setup": o.time_setup, "time_done": o.time_done, "type": o.type,
                "state": o.state, "magic": o.magic, "position_id": o.position_id, "volume_initial": o.volume,
                "volume_current": o.volume if o.state == contract.ORDER_STATE_PLACED else 0.0,
                "price_open": o.price, "sl": o.sl, "tp": o.tp,
                "price_current": ask if o.type == contract.ORDER_TYPE_BUY_LIMIT else bid,
                "symbol": o.symbol, "comment": o.comment}

    def new_ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def book_deal(self, *, order: int, type_: int, entry: int, volume: float, price: float, magic: int,
                  comment: str, position_id: int, profit: float, when: int) -> int:
        ticket = self.new_ticket()
        commission = -abs(self.settings.commission_per_lot * volume)
        self.balance += profit + commission
        self.deals.append({"ticket": ticket, "order": order, "time": when, "time_msc": when * 1000, "type": type_,
                           "entry": entry, "magic": magic, "position_id": position_id, "volume": volume,
                           "price": price, "commission": commission, "swap": 0.0, "profit": round(profit, 2),
                           "fee": 0.0, "symbol": self.settings.symbol, "comment": comment})
        delay = self.deal_delay(self.deals[-1]) if self.deal_delay is not None else 0.0
        if delay > 0:
            self._listed_from[ticket] = when + delay
        return ticket

    def record_order(self, o: PendingOrder) -> None:
        """Add ``o`` as it is now (filled or cancelled) to the order history."""
        self.history_orders.append(self._order_dict(o))
