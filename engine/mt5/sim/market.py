"""The simulated MT5 terminal behind the simulator: the contract's Backend over a replay and an account.

Real bars/quotes replayed on a clock (engine.mt5.sim.replay), a hedging account's books
(engine.mt5.sim.account) and the fill rules (engine.mt5.sim.fills). Times on the wire are broker server
time = UTC + offset. All state sits behind one lock; every public method returns contract-shaped dicts.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime
from typing import Any

import pandas as pd

from engine.errors import InvalidRequestError
from engine.mt5 import contract
from engine.mt5.sim.account import Account
from engine.mt5.sim.fills import Dealer
from engine.mt5.sim.replay import Replay
from engine.mt5.sim.settings import SimSettings
from engine.timeframes import Timeframe


class SimMarket:
    """A one-symbol hedging account replaying ``bars`` (and optionally real ``ticks``).

    Tests may set ``market_closed`` to refuse orders with MT5's 10018 (market closed), and
    ``requote_next`` to answer the next N market orders with 10004 (requote), as when the price moves
    between a client's quote and its order, and ``throttle_next`` to answer the next N orders with 10024
    (too many requests), as a trade server that rate-limits.
    """

    blocking = False  # every call is a short computation: the server runs it on its event loop

    def __init__(self, bars: pd.DataFrame | None = None, settings: SimSettings | None = None, *,
                 ticks: pd.DataFrame | None = None) -> None:
        self.settings = settings or SimSettings()
        self._lock = threading.RLock()
        rng = random.Random(self.settings.seed)  # one stream: slippage and duplicate ticks replay together
        self.replay = Replay(bars, ticks, self.settings, rng)
        self.account = Account(self.settings, quote=self.replay.quote, now=self.replay.now_server_s)
        self.dealer = Dealer(self.account, rng)
        self._settled = self.replay.cursor  # bars below this index have been checked for fills
        self.market_closed = False
        self.requote_next = 0
        self.throttle_next = 0

    def _sync(self) -> None:
        """Move the replay to wall-clock time (speed > 0) and settle orders on bars that closed."""
        self.replay.follow_wall_clock()
        m1 = self.replay.m1
        while self._settled < self.replay.cursor:
            j = self._settled
            self.dealer.settle_bar(float(m1.open[j]), float(m1.high[j]), float(m1.low[j]), int(m1.start_s[j]) + 59)
            self._settled += 1

    def advance(self, bars: int = 1) -> int:
        """Step the replay ``bars`` one-minute bars forward (step mode); returns how many it moved."""
        with self._lock:
            moved = self.replay.step(bars)
            self._sync()
            return moved

    def now_utc(self) -> pd.Timestamp:
        with self._lock:
            self._sync()
            return self.replay.now_utc()

    def _check_symbol(self, symbol: str | None) -> None:
        if symbol is not None and symbol != self.settings.symbol:
            raise InvalidRequestError(f"unknown symbol {symbol!r}; this server has {self.settings.symbol}",
                                      status=404)

    # -- read API ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self._lock:
            self._sync()
            now_utc = contract.from_epoch_s(self.replay.now_server_s() - self.replay.offset_s)
            return {"status": "ok", "connected": True, "server": self.settings.trade_server,
                    "time_utc": contract.iso(now_utc), "version": "engine-simulator/1"}

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            bid, ask, _ = self.replay.quote()
            s = self.settings
            return {"name": s.symbol, "description": "Bitcoin vs US Dollar (simulated)", "digits": s.digits,
                    "point": s.point, "spread": round((ask - bid) / s.point),
                    "trade_contract_size": s.contract_size, "trade_tick_size": s.point,
                    # Profit of one tick on one lot, in the account currency (quotes are in it).
                    "trade_tick_value": round(s.contract_size * s.point, 10), "volume_min": s.volume_min,
                    "volume_max": s.volume_max, "volume_step": s.volume_step,
                    "trade_mode": 0 if self.market_closed else 4, "currency_base": "BTC",
                    "currency_profit": s.currency, "bid": bid, "ask": ask}

    def symbol_info_tick(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            bid, ask, ms = self.replay.quote()
            return {"time": ms // 1000, "time_msc": ms, "bid": bid, "ask": ask, "last": 0.0, "volume": 0,
                    "flags": 6, "volume_real": 0.0}

    def rates_from_pos(self, symbol: str, tf: Timeframe, start_pos: int, count: int) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            if self.settings.step_on_poll and self.settings.speed == 0:
                self.advance(1)
            self._sync()
            return self.replay.bars_back(tf, start_pos, count)

    def rates_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            return self.replay.bars_between(tf, start, end)

    def ticks_range(self, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            return self.replay.ticks_between(start, end)

    def account_info(self) -> dict[str, Any]:
        with self._lock:
            self._sync()
            return self.account.info()

    def positions(self, symbol: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return self.account.position_records(symbol)

    def orders(self, symbol: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return self.account.pending_records(symbol)

    def history_deals(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return self.account.deals_between(start, end)

    def history_orders(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return self.account.orders_between(start, end)

    def last_error(self) -> tuple[int, str]:
        """The package's last_error(): the simulated terminal never fails a call."""
        return 1, "Success"

    # -- trading ---------------------------------------------------------------------------------------
    def order_send(self, req: contract.OrderRequest) -> dict[str, Any]:
        with self._lock:
            self._sync()
            bid, ask, _ = self.replay.quote()
            if req.action == contract.TRADE_ACTION_REMOVE:
                return self.dealer.cancel(req.order, bid, ask)
            if req.action == contract.TRADE_ACTION_SLTP:
                return self.dealer.modify_stops(req.position, req.sl, req.tp, bid, ask)
            self._check_symbol(req.symbol)
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return contract.result(contract.RETCODE_TOO_MANY_REQUESTS, bid=bid, ask=ask,
                                       comment="too many requests")
            refused = self._refusal(req.volume, bid, ask)
            if refused is not None:
                return refused
            if req.action == contract.TRADE_ACTION_PENDING:
                return self.dealer.place_limit(req, bid, ask)
            if self.requote_next > 0:
                self.requote_next -= 1
                return contract.result(contract.RETCODE_REQUOTE, bid=bid, ask=ask, comment="the price moved")
            return self.dealer.market(req, bid, ask)

    def close_position(self, ticket: int, volume: float | None, deviation: int, magic: int,
                       comment: str) -> dict[str, Any]:
        with self._lock:
            self._sync()
            bid, ask, _ = self.replay.quote()
            req = self.dealer.closing_request(ticket, volume, deviation, magic, comment)
            if req is None:
                return contract.result(contract.RETCODE_POSITION_CLOSED, bid=bid, ask=ask,
                                       comment=f"no open position {ticket}")
            if self.market_closed:
                return contract.result(contract.RETCODE_MARKET_CLOSED, bid=bid, ask=ask)
            if not self.dealer.volume_ok(req.volume):
                return contract.result(contract.RETCODE_INVALID_VOLUME, bid=bid, ask=ask)
            return self.dealer.market(req, bid, ask)

    def _refusal(self, volume: float, bid: float, ask: float) -> dict[str, Any] | None:
        if self.market_closed:
            return contract.result(contract.RETCODE_MARKET_CLOSED, bid=bid, ask=ask)
        if not self.dealer.volume_ok(volume):
            s = self.settings
            return contract.result(contract.RETCODE_INVALID_VOLUME, bid=bid, ask=ask,
                                   comment=f"volume must be {s.volume_min}..{s.volume_max} "
                                           f"in steps of {s.volume_step}")
        return None
