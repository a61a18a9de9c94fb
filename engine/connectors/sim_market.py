"""The simulated MT5 account behind the simulator: real bars/quotes replayed on a clock, fills, positions.

Prices: bars are bid bars (as in MT5); ask = bid + spread. The bar forming at the replay time shows
only its open price, so nothing after "now" can leak to a client. Pending limit orders and SL/TP are
checked against each bar once it has closed. Times on the wire are broker server time = UTC + offset.
All state sits behind one lock; every public method returns contract-shaped dicts.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from engine.connectors import contract as c
from engine.errors import InvalidRequestError
from engine.timeframes import Timeframe

_NS = 1_000_000_000


@dataclass
class _Series:
    """One timeframe's bars as arrays; ``first`` maps each bar to its first M1 row."""

    start_s: np.ndarray  # server-time open, epoch seconds
    first: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    seconds: int


@dataclass
class _Position:
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


@dataclass
class _Order:
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
    state: int = c.ORDER_STATE_PLACED
    time_done: int = 0
    position_id: int = 0


@dataclass
class SimSettings:
    symbol: str = "BTCUSD"
    digits: int = 2
    spread_points: int = 1500  # 15.00 USD on BTC at point 0.01
    slippage_points: int = 0
    contract_size: float = 1.0
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    balance: float = 10_000.0
    currency: str = "USD"
    leverage: int = 10
    commission_per_lot: float = 0.0
    server_offset_hours: float = 2.0
    speed: float = 0.0
    start: str | None = None
    step_on_poll: bool = False
    seed: int = 42
    login: int = 5_000_001
    server: str = "engine-simulator"

    @property
    def point(self) -> float:
        return 10.0 ** -self.digits


class SimMarket:
    """A one-symbol hedging account replaying ``bars`` (and optionally real ``ticks``)."""

    def __init__(self, bars: pd.DataFrame | None = None, settings: SimSettings | None = None, *,
                 ticks: pd.DataFrame | None = None) -> None:
        self.s = settings or SimSettings()
        if bars is None and ticks is None:
            raise InvalidRequestError("the simulator needs bars or ticks to replay")
        self._lock = threading.RLock()
        self._rng = random.Random(self.s.seed)
        self._offset_s = round(self.s.server_offset_hours * 3600)
        self._ticks = self._load_ticks(ticks) if ticks is not None else None
        if bars is None:
            bars = self._bars_from_ticks(ticks)  # type: ignore[arg-type]
        self._m1 = self._load_bars(bars)
        self._series: dict[int, _Series] = {60: self._m1}
        n = len(self._m1.start_s)
        if self.s.start is None:
            self._cursor = n - 1
        else:
            start = pd.Timestamp(self.s.start)
            start = start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC")
            want = int(start.as_unit("ns").value // _NS) + self._offset_s  # epoch seconds, server time
            self._cursor = int(min(max(np.searchsorted(self._m1.start_s, want, side="right") - 1, 0), n - 1))
        self._wall0 = time.monotonic()
        self._cursor0 = self._cursor
        self._processed = self._cursor  # bars below this index have been checked for fills
        self._exact_s = float(self._m1.start_s[self._cursor])
        self.market_closed = False
        self.balance = float(self.s.balance)
        self._next_ticket = 1_000_001
        self.positions_: dict[int, _Position] = {}
        self.orders_: dict[int, _Order] = {}
        self.history_orders_: list[dict[str, Any]] = []
        self.deals_: list[dict[str, Any]] = []
        self.duplicate_tick_rate = 0.0

    # -- data loading ------------------------------------------------------------------------------
    def _load_bars(self, bars: pd.DataFrame) -> _Series:
        if len(bars) == 0:
            raise InvalidRequestError("the simulator got an empty bar frame")
        idx = pd.DatetimeIndex(bars.index).tz_convert("UTC").as_unit("ns")
        start_s = idx.asi8 // _NS + self._offset_s
        vol = bars["volume"].to_numpy("float64") if "volume" in bars else np.zeros(len(bars))
        return _Series(start_s=start_s, first=np.arange(len(bars)),
                       open=bars["open"].to_numpy("float64"), high=bars["high"].to_numpy("float64"),
                       low=bars["low"].to_numpy("float64"), close=bars["close"].to_numpy("float64"),
                       volume=vol, seconds=60)

    @staticmethod
    def _bars_from_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
        bid = ticks["bid"].astype("float64")
        ohlc = bid.resample("1min", label="left", closed="left").ohlc().dropna()
        ohlc["volume"] = bid.resample("1min").count().reindex(ohlc.index).astype("float64")
        return ohlc

    def _load_ticks(self, ticks: pd.DataFrame) -> dict[str, np.ndarray]:
        idx = pd.DatetimeIndex(ticks.index).tz_convert("UTC").as_unit("ns")
        ms = idx.asi8 // 1_000_000 + self._offset_s * 1000
        order = np.argsort(ms, kind="stable")
        last = ticks["last"].to_numpy("float64") if "last" in ticks else np.zeros(len(ticks))
        vol = ticks["volume"].to_numpy("float64") if "volume" in ticks else np.zeros(len(ticks))
        return {"ms": ms[order], "bid": ticks["bid"].to_numpy("float64")[order],
                "ask": ticks["ask"].to_numpy("float64")[order], "last": np.nan_to_num(last[order]),
                "volume": np.nan_to_num(vol[order])}

    def _tf(self, tf: Timeframe) -> _Series:
        if tf.mt5 == "MN1" or tf.seconds % 60:
            raise InvalidRequestError(f"the simulator serves fixed-length timeframes (M1..W1), not {tf.mt5}")
        s = self._series.get(tf.seconds)
        if s is None:
            m1 = self._m1
            # Higher timeframes are cut on server-time boundaries, as MT5 does (D1 = broker midnight).
            group = m1.start_s // tf.seconds
            first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            s = _Series(start_s=group[first] * tf.seconds, first=first,
                        open=m1.open[first], high=np.maximum.reduceat(m1.high, first),
                        low=np.minimum.reduceat(m1.low, first), close=m1.close[np.r_[first[1:] - 1, len(group) - 1]],
                        volume=np.add.reduceat(m1.volume, first), seconds=tf.seconds)
            self._series[tf.seconds] = s
        return s

    # -- clock ----------------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Move the replay to wall-clock time (speed > 0) and settle orders on bars that closed."""
        if self.s.speed > 0:
            elapsed = (time.monotonic() - self._wall0) * self.s.speed
            want = self._m1.start_s[self._cursor0] + elapsed
            k = int(np.searchsorted(self._m1.start_s, want, side="right") - 1)
            self._cursor = min(max(k, self._cursor), len(self._m1.start_s) - 1)
            self._exact_s = max(float(want), float(self._m1.start_s[self._cursor]))
        else:
            self._exact_s = float(self._m1.start_s[self._cursor])
        while self._processed < self._cursor:
            self._settle_bar(self._processed)
            self._processed += 1

    def advance(self, bars: int = 1) -> int:
        """Step the replay ``bars`` one-minute bars forward (step mode); returns how many it moved."""
        with self._lock:
            target = min(self._cursor + max(int(bars), 0), len(self._m1.start_s) - 1)
            moved = target - self._cursor
            self._cursor = target
            self._sync()
            return moved

    def now_server_s(self) -> int:
        return int(self._m1.start_s[self._cursor])

    def now_utc(self) -> pd.Timestamp:
        with self._lock:
            self._sync()
            return pd.Timestamp((self.now_server_s() - self._offset_s) * _NS, tz="UTC")

    # -- prices ----------------------------------------------------------------------------------------
    def _quote(self) -> tuple[float, float, int]:
        """(bid, ask, time_msc in server time) at the replay time."""
        if self._ticks is not None:
            now_ms = int(self._exact_s * 1000)
            i = int(np.searchsorted(self._ticks["ms"], now_ms, side="right") - 1)
            if i >= 0:
                return float(self._ticks["bid"][i]), float(self._ticks["ask"][i]), int(self._ticks["ms"][i])
        bid = float(self._m1.open[self._cursor])
        return bid, self._round(bid + self.s.spread_points * self.s.point), self.now_server_s() * 1000

    def _round(self, price: float) -> float:
        return round(price, self.s.digits)

    def _check_symbol(self, symbol: str | None) -> None:
        if symbol is not None and symbol != self.s.symbol:
            raise InvalidRequestError(f"unknown symbol {symbol!r}; this server has {self.s.symbol}", status=404)

    # -- read API ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self._lock:
            self._sync()
            now = self.now_server_s()
            return {"status": "ok", "connected": True, "server": self.s.server,
                    "time_utc": c.iso(c.from_epoch_s(now - self._offset_s)), "version": "engine-simulator/1"}

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            bid, ask, _ = self._quote()
            s = self.s
            return {"name": s.symbol, "description": "Bitcoin vs US Dollar (simulated)", "digits": s.digits,
                    "point": s.point, "spread": round((ask - bid) / s.point),
                    "trade_contract_size": s.contract_size, "volume_min": s.volume_min,
                    "volume_max": s.volume_max, "volume_step": s.volume_step,
                    "trade_mode": 0 if self.market_closed else 4, "currency_base": "BTC",
                    "currency_profit": s.currency, "bid": bid, "ask": ask}

    def symbol_info_tick(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            bid, ask, ms = self._quote()
            return {"time": ms // 1000, "time_msc": ms, "bid": bid, "ask": ask, "last": 0.0, "volume": 0}

    def _bar_records(self, s: _Series, lo: int, hi: int) -> list[dict[str, Any]]:
        """Bars ``lo..hi-1`` of ``s`` visible at the replay time; the last may be the forming one."""
        now = self.now_server_s()
        k = self._cursor
        # Bars are visible up to the one containing "now"; that one is cut at the current M1 open.
        visible = int(np.searchsorted(s.start_s, now, side="right"))
        lo, hi = max(lo, 0), min(hi, visible)
        if hi <= lo:
            return []
        times = np.datetime_as_string(s.start_s[lo:hi].astype("datetime64[s]"), unit="s").tolist()
        o, h, lw, cl = (s.open[lo:hi].tolist(), s.high[lo:hi].tolist(), s.low[lo:hi].tolist(),
                        s.close[lo:hi].tolist())
        vol = s.volume[lo:hi].tolist()
        if hi == visible:
            j = hi - 1 - lo
            first = int(s.first[hi - 1])
            if first < k:  # partial higher-timeframe bar: closed M1 rows plus the current open
                m1 = self._m1
                o[j] = float(m1.open[first])
                h[j] = float(max(m1.high[first:k].max(), m1.open[k]))
                lw[j] = float(min(m1.low[first:k].min(), m1.open[k]))
                cl[j] = float(m1.open[k])
                vol[j] = float(m1.volume[first:k].sum())
            else:
                o[j] = h[j] = lw[j] = cl[j] = float(self._m1.open[k])
                vol[j] = 0.0
        spread = int(self.s.spread_points)
        # tick_volume is synthetic (the data has no tick counts); real_volume carries the data's volume.
        return [{"time": t, "open": a, "high": b, "low": d, "close": e, "tick_volume": 1 + int(v),
                 "spread": spread, "real_volume": v}
                for t, a, b, d, e, v in zip(times, o, h, lw, cl, vol, strict=True)]

    def rates_from_pos(self, symbol: str, tf: Timeframe, start_pos: int, count: int) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            if self.s.step_on_poll and self.s.speed == 0:
                self.advance(1)
            self._sync()
            s = self._tf(tf)
            visible = int(np.searchsorted(s.start_s, self.now_server_s(), side="right"))
            hi = visible - start_pos
            return self._bar_records(s, hi - count, hi)

    def rates_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            s = self._tf(tf)
            lo = int(np.searchsorted(s.start_s, c.epoch_s(start), side="left"))
            hi = int(np.searchsorted(s.start_s, c.epoch_s(end), side="right"))
            return self._bar_records(s, lo, hi)

    def ticks_range(self, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        with self._lock:
            self._sync()
            now_ms = self._quote()[2]
            lo_ms, hi_ms = c.epoch_s(start) * 1000, min(c.epoch_s(end) * 1000 + 999, now_ms)
            if self._ticks is None:
                # Bar-backed: one tick per bar open (the only price known inside a bar without lookahead).
                lo = int(np.searchsorted(self._m1.start_s * 1000, lo_ms, side="left"))
                hi = int(np.searchsorted(self._m1.start_s * 1000, hi_ms, side="right"))
                ms = self._m1.start_s[lo:hi] * 1000
                bid = self._m1.open[lo:hi]
                ask = np.round(bid + self.s.spread_points * self.s.point, self.s.digits)
                last, vol = np.zeros(len(ms)), np.zeros(len(ms))
            else:
                t = self._ticks
                lo = int(np.searchsorted(t["ms"], lo_ms, side="left"))
                hi = int(np.searchsorted(t["ms"], hi_ms, side="right"))
                ms, bid, ask, last, vol = t["ms"][lo:hi], t["bid"][lo:hi], t["ask"][lo:hi], t["last"][lo:hi], \
                    t["volume"][lo:hi]
            out = []
            for m, b, a, la, v in zip(ms.tolist(), bid.tolist(), ask.tolist(), last.tolist(), vol.tolist(),
                                      strict=True):
                rec = {"time": c.iso(c.from_epoch_s(m // 1000)), "time_msc": m, "bid": b, "ask": a, "last": la,
                       "volume": v}
                out.append(rec)
                if self.duplicate_tick_rate and self._rng.random() < self.duplicate_tick_rate:
                    out.append(dict(rec))
            return out

    def account_info(self) -> dict[str, Any]:
        with self._lock:
            self._sync()
            profit = sum(self._profit(p) for p in self.positions_.values())
            margin = sum(self._margin(p.volume, p.price_open) for p in self.positions_.values())
            equity = self.balance + profit
            return {"login": self.s.login, "name": "engine simulator", "server": self.s.server,
                    "currency": self.s.currency, "leverage": self.s.leverage, "trade_mode": 0,
                    "balance": round(self.balance, 2), "equity": round(equity, 2), "profit": round(profit, 2),
                    "margin": round(margin, 2), "margin_free": round(equity - margin, 2),
                    "margin_level": round(equity / margin * 100, 2) if margin else 0.0}

    def positions(self, symbol: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return [self._position_dict(p) for p in self.positions_.values()
                    if symbol is None or p.symbol == symbol]

    def orders(self, symbol: str | None) -> list[dict[str, Any]]:
        with self._lock:
            self._sync()
            return [self._order_dict(o) for o in self.orders_.values() if symbol is None or o.symbol == symbol]

    def history_deals(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        lo, hi = c.epoch_s(start), c.epoch_s(end)
        with self._lock:
            self._sync()
            return [dict(d) for d in self.deals_ if lo <= d["time"] <= hi]

    def history_orders(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        lo, hi = c.epoch_s(start), c.epoch_s(end)
        with self._lock:
            self._sync()
            return [dict(o) for o in self.history_orders_ if lo <= o["time_setup"] <= hi]

    # -- accounting ----------------------------------------------------------------------------------
    def _margin(self, volume: float, price: float) -> float:
        return volume * self.s.contract_size * price / self.s.leverage

    def _profit(self, p: _Position, price: float | None = None) -> float:
        bid, ask, _ = self._quote()
        px = price if price is not None else (bid if p.type == c.POSITION_TYPE_BUY else ask)
        sign = 1.0 if p.type == c.POSITION_TYPE_BUY else -1.0
        return sign * (px - p.price_open) * p.volume * self.s.contract_size

    def _position_dict(self, p: _Position) -> dict[str, Any]:
        bid, ask, _ = self._quote()
        return {"ticket": p.ticket, "time": p.time_s, "time_msc": p.time_s * 1000, "type": p.type, "magic": p.magic,
                "identifier": p.ticket, "volume": p.volume, "price_open": p.price_open, "sl": p.sl, "tp": p.tp,
                "price_current": bid if p.type == c.POSITION_TYPE_BUY else ask, "swap": 0.0,
                "profit": round(self._profit(p), 2), "symbol": p.symbol, "comment": p.comment}

    def _order_dict(self, o: _Order) -> dict[str, Any]:
        bid, ask, _ = self._quote()
        return {"ticket": o.ticket, "time_setup": o.time_setup, "time_done": o.time_done, "type": o.type,
                "state": o.state, "magic": o.magic, "position_id": o.position_id, "volume_initial": o.volume,
                "volume_current": o.volume if o.state == c.ORDER_STATE_PLACED else 0.0, "price_open": o.price,
                "sl": o.sl, "tp": o.tp, "price_current": ask if o.type == c.ORDER_TYPE_BUY_LIMIT else bid,
                "symbol": o.symbol, "comment": o.comment}

    def _ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def _volume_ok(self, volume: float) -> bool:
        s = self.s
        steps = volume / s.volume_step
        return s.volume_min <= volume <= s.volume_max and math.isclose(steps, round(steps), abs_tol=1e-6)

    def _deal(self, *, order: int, type_: int, entry: int, volume: float, price: float, magic: int,
              comment: str, position_id: int, profit: float, when: int) -> int:
        ticket = self._ticket()
        commission = -abs(self.s.commission_per_lot * volume)
        self.balance += profit + commission
        self.deals_.append({"ticket": ticket, "order": order, "time": when, "time_msc": when * 1000, "type": type_,
                            "entry": entry, "magic": magic, "position_id": position_id, "volume": volume,
                            "price": price, "commission": commission, "swap": 0.0, "profit": round(profit, 2),
                            "fee": 0.0, "symbol": self.s.symbol, "comment": comment})
        return ticket

    def _record_order(self, o: _Order) -> None:
        self.history_orders_.append(self._order_dict(o))

    def _free_margin(self) -> float:
        profit = sum(self._profit(p) for p in self.positions_.values())
        margin = sum(self._margin(p.volume, p.price_open) for p in self.positions_.values())
        return self.balance + profit - margin

    # -- trading ---------------------------------------------------------------------------------------
    def order_send(self, req: c.OrderRequest) -> dict[str, Any]:
        with self._lock:
            self._sync()
            bid, ask, _ = self._quote()
            if req.action == c.TRADE_ACTION_REMOVE:
                order = self.orders_.pop(req.order, None)
                if order is None:
                    return c.result(c.RETCODE_INVALID_ORDER, bid=bid, ask=ask,
                                    comment=f"no pending order {req.order}")
                order.state, order.time_done = c.ORDER_STATE_CANCELED, self.now_server_s()
                self._record_order(order)
                return c.result(c.RETCODE_DONE, order=order.ticket, bid=bid, ask=ask)
            self._check_symbol(req.symbol)
            if self.market_closed:
                return c.result(c.RETCODE_MARKET_CLOSED, bid=bid, ask=ask)
            if not self._volume_ok(req.volume):
                return c.result(c.RETCODE_INVALID_VOLUME, bid=bid, ask=ask,
                                comment=f"volume must be {self.s.volume_min}..{self.s.volume_max} "
                                        f"in steps of {self.s.volume_step}")
            if req.action == c.TRADE_ACTION_PENDING:
                return self._place_limit(req, bid, ask)
            return self._market(req, bid, ask)

    def _market(self, req: c.OrderRequest, bid: float, ask: float) -> dict[str, Any]:
        buy = req.type == c.ORDER_TYPE_BUY
        slip = self._rng.uniform(0, self.s.slippage_points) * self.s.point if self.s.slippage_points else 0.0
        fill = self._round(ask + slip if buy else bid - slip)
        if req.price > 0 and abs(fill - req.price) > req.deviation * self.s.point:
            return c.result(c.RETCODE_REQUOTE, bid=bid, ask=ask,
                            comment=f"price moved to {fill} (more than {req.deviation} points from {req.price})")
        now = self.now_server_s()
        if req.position:
            return self._close(req.position, req.volume, fill, req.type, req.magic, req.comment, bid, ask, now)
        if self._free_margin() < self._margin(req.volume, fill) + abs(self.s.commission_per_lot * req.volume):
            return c.result(c.RETCODE_NO_MONEY, bid=bid, ask=ask)
        order_ticket = self._ticket()
        pos = _Position(ticket=order_ticket, type=c.POSITION_TYPE_BUY if buy else c.POSITION_TYPE_SELL,
                        volume=req.volume, price_open=fill, time_s=now, magic=req.magic, comment=req.comment,
                        symbol=req.symbol, sl=req.sl, tp=req.tp)
        deal = self._deal(order=order_ticket, type_=req.type, entry=c.DEAL_ENTRY_IN, volume=req.volume, price=fill,
                          magic=req.magic, comment=req.comment, position_id=pos.ticket, profit=0.0, when=now)
        self.positions_[pos.ticket] = pos
        self._record_order(_Order(ticket=order_ticket, type=req.type, volume=req.volume, price=fill,
                                  time_setup=now, magic=req.magic, comment=req.comment, symbol=req.symbol,
                                  sl=req.sl, tp=req.tp, state=c.ORDER_STATE_FILLED, time_done=now,
                                  position_id=pos.ticket))
        return c.result(c.RETCODE_DONE, deal=deal, order=order_ticket, volume=req.volume, price=fill, bid=bid,
                        ask=ask)

    def _close(self, ticket: int, volume: float, price: float, type_: int, magic: int, comment: str,
               bid: float, ask: float, now: int) -> dict[str, Any]:
        pos = self.positions_.get(ticket)
        if pos is None:
            return c.result(c.RETCODE_POSITION_CLOSED, bid=bid, ask=ask, comment=f"no open position {ticket}")
        closing_type = c.ORDER_TYPE_SELL if pos.type == c.POSITION_TYPE_BUY else c.ORDER_TYPE_BUY
        if type_ != closing_type:
            return c.result(c.RETCODE_INVALID, bid=bid, ask=ask,
                            comment=f"position {ticket} is closed by a {'SELL' if closing_type else 'BUY'}")
        if volume > pos.volume + 1e-9:
            return c.result(c.RETCODE_INVALID_VOLUME, bid=bid, ask=ask,
                            comment=f"position {ticket} holds only {pos.volume} lots")
        order_ticket = self._ticket()
        profit = self._profit(_Position(**{**pos.__dict__, "volume": volume}), price)
        deal = self._deal(order=order_ticket, type_=closing_type, entry=c.DEAL_ENTRY_OUT, volume=volume,
                          price=price, magic=magic, comment=comment, position_id=ticket, profit=profit, when=now)
        self._record_order(_Order(ticket=order_ticket, type=closing_type, volume=volume, price=price,
                                  time_setup=now, magic=magic, comment=comment, symbol=pos.symbol,
                                  state=c.ORDER_STATE_FILLED, time_done=now, position_id=ticket))
        remaining = round(pos.volume - volume, 8)
        if remaining <= 1e-9:
            del self.positions_[ticket]
        else:
            pos.volume = remaining
        return c.result(c.RETCODE_DONE, deal=deal, order=order_ticket, volume=volume, price=price, bid=bid, ask=ask)

    def close_position(self, ticket: int, volume: float | None, deviation: int, magic: int,
                       comment: str) -> dict[str, Any]:
        with self._lock:
            self._sync()
            pos = self.positions_.get(ticket)
            bid, ask, _ = self._quote()
            if pos is None:
                return c.result(c.RETCODE_POSITION_CLOSED, bid=bid, ask=ask, comment=f"no open position {ticket}")
            closing = c.ORDER_TYPE_SELL if pos.type == c.POSITION_TYPE_BUY else c.ORDER_TYPE_BUY
            req = c.OrderRequest(action=c.TRADE_ACTION_DEAL, symbol=pos.symbol,
                                 volume=pos.volume if volume is None else volume, type=closing, deviation=deviation,
                                 magic=magic or pos.magic, comment=comment, position=ticket)
            if self.market_closed:
                return c.result(c.RETCODE_MARKET_CLOSED, bid=bid, ask=ask)
            if not self._volume_ok(req.volume):
                return c.result(c.RETCODE_INVALID_VOLUME, bid=bid, ask=ask)
            return self._market(req, bid, ask)

    def _place_limit(self, req: c.OrderRequest, bid: float, ask: float) -> dict[str, Any]:
        price = self._round(req.price)
        if (req.type == c.ORDER_TYPE_BUY_LIMIT and price >= ask) or (
                req.type == c.ORDER_TYPE_SELL_LIMIT and price <= bid):
            side = "below the ask" if req.type == c.ORDER_TYPE_BUY_LIMIT else "above the bid"
            return c.result(c.RETCODE_INVALID_PRICE, bid=bid, ask=ask,
                            comment=f"a limit price must be {side}; use a market order")
        ticket = self._ticket()
        self.orders_[ticket] = _Order(ticket=ticket, type=req.type, volume=req.volume, price=price,
                                      time_setup=self.now_server_s(), magic=req.magic, comment=req.comment,
                                      symbol=req.symbol, sl=req.sl, tp=req.tp)
        return c.result(c.RETCODE_PLACED, order=ticket, volume=req.volume, price=price, bid=bid, ask=ask)

    def _settle_bar(self, j: int) -> None:
        """Fill pending limits and trigger SL/TP on M1 bar ``j``, which has closed."""
        m1, spread = self._m1, self.s.spread_points * self.s.point
        o, h, lw = float(m1.open[j]), float(m1.high[j]), float(m1.low[j])
        when = int(m1.start_s[j]) + 59
        for ticket, order in list(self.orders_.items()):
            if order.type == c.ORDER_TYPE_BUY_LIMIT and lw + spread <= order.price:
                fill = self._round(min(order.price, o + spread))
            elif order.type == c.ORDER_TYPE_SELL_LIMIT and h >= order.price:
                fill = self._round(max(order.price, o))
            else:
                continue
            del self.orders_[ticket]
            buy = order.type == c.ORDER_TYPE_BUY_LIMIT
            order.time_done = when
            if self._free_margin() < self._margin(order.volume, fill):
                order.state = c.ORDER_STATE_CANCELED
                self._record_order(order)
                continue
            pos = _Position(ticket=ticket, type=c.POSITION_TYPE_BUY if buy else c.POSITION_TYPE_SELL,
                            volume=order.volume, price_open=fill, time_s=when, magic=order.magic,
                            comment=order.comment, symbol=order.symbol, sl=order.sl, tp=order.tp)
            self._deal(order=ticket, type_=c.ORDER_TYPE_BUY if buy else c.ORDER_TYPE_SELL, entry=c.DEAL_ENTRY_IN,
                       volume=order.volume, price=fill, magic=order.magic, comment=order.comment,
                       position_id=ticket, profit=0.0, when=when)
            self.positions_[ticket] = pos
            order.state, order.position_id = c.ORDER_STATE_FILLED, ticket
            self._record_order(order)
        for ticket, p in list(self.positions_.items()):
            buy = p.type == c.POSITION_TYPE_BUY
            # Bars are bid bars: a long exits on the bid, a short on the ask. Stop first when both hit.
            lo, hi, op = (lw, h, o) if buy else (lw + spread, h + spread, o + spread)
            exit_px, reason = None, ""
            if p.sl and ((buy and lo <= p.sl) or (not buy and hi >= p.sl)):
                exit_px, reason = (min(p.sl, op) if buy else max(p.sl, op)), "sl"
            elif p.tp and ((buy and hi >= p.tp) or (not buy and lo <= p.tp)):
                exit_px, reason = (max(p.tp, op) if buy else min(p.tp, op)), "tp"
            if exit_px is not None:
                exit_px = self._round(exit_px)
                order_ticket = self._ticket()
                profit = self._profit(p, exit_px)
                self._deal(order=order_ticket, type_=c.ORDER_TYPE_SELL if buy else c.ORDER_TYPE_BUY,
                           entry=c.DEAL_ENTRY_OUT, volume=p.volume, price=exit_px, magic=p.magic,
                           comment=reason, position_id=ticket, profit=profit, when=when)
                del self.positions_[ticket]

