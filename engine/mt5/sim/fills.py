"""How the simulator fills orders: market orders at the quote, limits and SL/TP on closed bars.

Market orders fill at the ask (buy) or the bid (sell), moved against the trader by seeded slippage of up
to ``slippage_points``; with a price given, a fill more than ``deviation`` points away is a requote.
Pending limit orders and SL/TP are checked against each one-minute bar once it has closed: a bar that
opens through a level fills at its open. Answers are MT5 results with retcodes.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from engine.mt5 import contract
from engine.mt5.sim.account import Account, PendingOrder, Position


class Dealer:
    """Executes requests against one :class:`Account` (under the caller's lock)."""

    def __init__(self, account: Account, rng: random.Random) -> None:
        self.account = account
        self.settings = account.settings
        self._rng = rng

    def volume_ok(self, volume: float) -> bool:
        s = self.settings
        steps = volume / s.volume_step
        return s.volume_min <= volume <= s.volume_max and math.isclose(steps, round(steps), abs_tol=1e-6)

    def cancel(self, ticket: int, bid: float, ask: float) -> dict[str, Any]:
        order = self.account.pending.pop(ticket, None)
        if order is None:
            return contract.result(contract.RETCODE_INVALID_ORDER, bid=bid, ask=ask,
                                   comment=f"no pending order {ticket}")
        order.state, order.time_done = contract.ORDER_STATE_CANCELED, self.account.now()
        self.account.record_order(order)
        return contract.result(contract.RETCODE_DONE, order=order.ticket, bid=bid, ask=ask)

    def modify_stops(self, ticket: int, sl: float, tp: float, bid: float, ask: float) -> dict[str, Any]:
        """TRADE_ACTION_SLTP: new stop loss and take profit for an open position."""
        pos = self.account.positions.get(ticket)
        if pos is None:
            return contract.result(contract.RETCODE_POSITION_CLOSED, bid=bid, ask=ask,
                                   comment=f"no open position {ticket}")
        buy = pos.type == contract.POSITION_TYPE_BUY
        now = bid if buy else ask
        if (sl and (sl >= now if buy else sl <= now)) or (tp and (tp <= now if buy else tp >= now)):
            return contract.result(contract.RETCODE_INVALID_STOPS, bid=bid, ask=ask,
                                   comment=f"stops on the wrong side of the price {now}")
        pos.sl, pos.tp = round(sl, self.settings.digits), round(tp, self.settings.digits)
        pos.time_update_s = self.account.now()
        return contract.result(contract.RETCODE_DONE, order=0, bid=bid, ask=ask)

    def closing_request(self, ticket: int, volume: float | None, deviation: int, magic: int,
                        comment: str) -> contract.OrderRequest | None:
        """The opposite deal that closes (part of) position ``ticket``; None when it is not open."""
        pos = self.account.positions.get(ticket)
        if pos is None:
            return None
        closing = contract.ORDER_TYPE_SELL if pos.type == contract.POSITION_TYPE_BUY else contract.ORDER_TYPE_BUY
        return contract.OrderRequest(action=contract.TRADE_ACTION_DEAL, symbol=pos.symbol,
                                     volume=pos.volume if volume is None else volume, type=closing,
                                     deviation=deviation, magic=magic or pos.magic, comment=comment, position=ticket)

    def market(self, req: contract.OrderRequest, bid: float, ask: float) -> dict[str, Any]:
        s, book = self.settings, self.account
        buy = req.type == contract.ORDER_TYPE_BUY
        slip = self._rng.uniform(0, s.slippage_points) * s.point if s.slippage_points else 0.0
        fill = round(ask + slip if buy else bid - slip, s.digits)
        if req.price > 0 and abs(fill - req.price) > req.deviation * s.point:
            return contract.result(contract.RETCODE_REQUOTE, bid=bid, ask=ask,
                                   comment=f"price moved to {fill} (more than {req.deviation} points "
                                           f"from {req.price})")
        now = book.now()
        if req.position:
            return self._close(req, fill, bid, ask, now)
        retcode, volume = contract.RETCODE_DONE, req.volume
        if s.fill_volume_cap is not None and req.volume > s.fill_volume_cap + 1e-9:
            # Not enough liquidity at the quote: IOC takes what there is, FOK all or nothing.
            if req.type_filling == contract.ORDER_FILLING_FOK:
                return contract.result(contract.RETCODE_REJECT, bid=bid, ask=ask,
                                       comment=f"only {s.fill_volume_cap} lots available (fill or kill)")
            retcode, volume = contract.RETCODE_DONE_PARTIAL, s.fill_volume_cap
            req = replace(req, volume=volume)
        if book.free_margin() < book.margin(req.volume, fill) + abs(s.commission_per_lot * req.volume):
            return contract.result(contract.RETCODE_NO_MONEY, bid=bid, ask=ask)
        ticket = book.new_ticket()
        pos = Position(ticket=ticket, type=contract.POSITION_TYPE_BUY if buy else contract.POSITION_TYPE_SELL,
                       volume=req.volume, price_open=fill, time_s=now, magic=req.magic, comment=req.comment,
                       symbol=req.symbol, sl=req.sl, tp=req.tp)
        deal = book.book_deal(order=ticket, type_=req.type, entry=contract.DEAL_ENTRY_IN, volume=req.volume,
                              price=fill, magic=req.magic, comment=req.comment, position_id=pos.ticket, profit=0.0,
                              when=now)
        book.positions[pos.ticket] = pos
        book.record_order(PendingOrder(ticket=ticket, type=req.type, volume=req.volume, price=fill, time_setup=now,
                                       magic=req.magic, comment=req.comment, symbol=req.symbol, sl=req.sl,
                                       tp=req.tp, state=contract.ORDER_STATE_FILLED, time_done=now,
                                       position_id=pos.ticket))
        return contract.result(retcode, deal=deal, order=ticket, volume=volume, price=fill, bid=bid, ask=ask)

    def _close(self, req: contract.OrderRequest, price: float, bid: float, ask: float, now: int) -> dict[str, Any]:
        book, ticket = self.account, req.position
        pos = book.positions.get(ticket)
        if pos is None:
            return contract.result(contract.RETCODE_POSITION_CLOSED, bid=bid, ask=ask,
                                   comment=f"no open position {ticket}")
        closing_type = contract.ORDER_TYPE_SELL if pos.type == contract.POSITION_TYPE_BUY else contract.ORDER_TYPE_BUY
        if req.type != closing_type:
            return contract.result(contract.RETCODE_INVALID, bid=bid, ask=ask,
                                   comment=f"position {ticket} is closed by a {'SELL' if closing_type else 'BUY'}")
        if req.volume > pos.volume + 1e-9:
            return contract.result(contract.RETCODE_INVALID_VOLUME, bid=bid, ask=ask,
                                   comment=f"position {ticket} holds only {pos.volume} lots")
        order_ticket = book.new_ticket()
        profit = book.profit(replace(pos, volume=req.volume), price)
        deal = book.book_deal(order=order_ticket, type_=closing_type, entry=contract.DEAL_ENTRY_OUT,
                              volume=req.volume, price=price, magic=req.magic, comment=req.comment,
                              position_id=ticket, profit=profit, when=now)
        book.record_order(PendingOrder(ticket=order_ticket, type=closing_type, volume=req.volume, price=price,
                                       time_setup=now, magic=req.magic, comment=req.comment, symbol=pos.symbol,
                                       state=contract.ORDER_STATE_FILLED, time_done=now, position_id=ticket))
        remaining = round(pos.volume - req.volume, 8)
        if remaining <= 1e-9:
            del book.positions[ticket]
        else:
            pos.volume, pos.time_update_s = remaining, now
        return contract.result(contract.RETCODE_DONE, deal=deal, order=order_ticket, volume=req.volume, price=price,
                               bid=bid, ask=ask)

    def place_limit(self, req: contract.OrderRequest, bid: float, ask: float) -> dict[str, Any]:
        price = round(req.price, self.settings.digits)
        if (req.type == contract.ORDER_TYPE_BUY_LIMIT and price >= ask) or (
                req.type == contract.ORDER_TYPE_SELL_LIMIT and price <= bid):
            side = "below the ask" if req.type == contract.ORDER_TYPE_BUY_LIMIT else "above the bid"
            return contract.result(contract.RETCODE_INVALID_PRICE, bid=bid, ask=ask,
                                   comment=f"a limit price must be {side}; use a market order")
        ticket = self.account.new_ticket()
        self.account.pending[ticket] = PendingOrder(ticket=ticket, type=req.type, volume=req.volume, price=price,
                                                    time_setup=self.account.now(), magic=req.magic,
                                                    comment=req.comment, symbol=req.symbol, sl=req.sl, tp=req.tp)
        return contract.result(contract.RETCODE_PLACED, order=ticket, volume=req.volume, price=price, bid=bid,
                               ask=ask)

    def settle_bar(self, bar_open: float, high: float, low: float, when: int) -> None:
        """Fill pending limits and trigger SL/TP on a one-minute bid bar that has closed at ``when``."""
        self._fill_limits(bar_open, high, low, when)
        self._trigger_stops(bar_open, high, low, when)

    def _fill_limits(self, bar_open: float, high: float, low: float, when: int) -> None:
        book, spread, digits = self.account, self.settings.spread_points * self.settings.point, self.settings.digits
        for ticket, order in list(book.pending.items()):
            if order.type == contract.ORDER_TYPE_BUY_LIMIT and low + spread <= order.price:
                fill = round(min(order.price, bar_open + spread), digits)
            elif order.type == contract.ORDER_TYPE_SELL_LIMIT and high >= order.price:
                fill = round(max(order.price, bar_open), digits)
            else:
                continue
            del book.pending[ticket]
            buy = order.type == contract.ORDER_TYPE_BUY_LIMIT
            order.time_done = when
            if book.free_margin() < book.margin(order.volume, fill):
                order.state = contract.ORDER_STATE_CANCELED
                book.record_order(order)
                continue
            pos = Position(ticket=ticket, type=contract.POSITION_TYPE_BUY if buy else contract.POSITION_TYPE_SELL,
                           volume=order.volume, price_open=fill, time_s=when, magic=order.magic,
                           comment=order.comment, symbol=order.symbol, sl=order.sl, tp=order.tp)
            book.book_deal(order=ticket, type_=contract.ORDER_TYPE_BUY if buy else contract.ORDER_TYPE_SELL,
                           entry=contract.DEAL_ENTRY_IN, volume=order.volume, price=fill, magic=order.magic,
                           comment=order.comment, position_id=ticket, profit=0.0, when=when)
            book.positions[ticket] = pos
            order.state, order.position_id = contract.ORDER_STATE_FILLED, ticket
            book.record_order(order)

    def _trigger_stops(self, bar_open: float, high: float, low: float, when: int) -> None:
        book, spread = self.account, self.settings.spread_points * self.settings.point
        for ticket, p in list(book.positions.items()):
            buy = p.type == contract.POSITION_TYPE_BUY
            # Bars are bid bars: a long exits on the bid, a short on the ask. Stop first when both hit.
            lo, hi, op = (low, high, bar_open) if buy else (low + spread, high + spread, bar_open + spread)
            exit_px, reason = None, ""
            if p.sl and ((buy and lo <= p.sl) or (not buy and hi >= p.sl)):
                exit_px, reason = (min(p.sl, op) if buy else max(p.sl, op)), "sl"
            elif p.tp and ((buy and hi >= p.tp) or (not buy and lo <= p.tp)):
                exit_px, reason = (max(p.tp, op) if buy else min(p.tp, op)), "tp"
            if exit_px is None:
                continue
            exit_px = round(exit_px, self.settings.digits)
            profit = book.profit(p, exit_px)
            closing_type = contract.ORDER_TYPE_SELL if buy else contract.ORDER_TYPE_BUY
            book.book_deal(order=book.new_ticket(), type_=closing_type, entry=contract.DEAL_ENTRY_OUT, volume=p.volume, price=exit_px, magic=p.magic,
                           comment=reason, position_id=ticket, profit=profit, when=when)
            del book.positions[ticket]
