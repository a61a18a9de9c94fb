"""A fake ``MetaTrader5`` module (the one mock the project allows: the real one is Windows-only).

It mimics the package's surface (constants, namedtuples, numpy structured arrays, None + last_error on
failure) and delegates market behaviour to a real SimMarket, so the bridge's translation layer is
exercised against the same replayed data as the simulator. It also records how many calls run at
once, so tests can check the bridge serialises them.
"""

from __future__ import annotations

import threading
import time
import types
from collections import namedtuple
from datetime import datetime
from typing import Any

import numpy as np

from engine.errors import InvalidRequestError
from engine.mt5 import contract
from engine.mt5.sim.market import SimMarket
from engine.timeframes import parse

TIMEFRAMES = {"M1": 1, "M2": 2, "M3": 3, "M5": 5, "M10": 10, "M15": 15, "M30": 30, "H1": 16385, "H4": 16388,
              "D1": 16408, "W1": 32769, "MN1": 49153}
_TF_BY_CONST = {v: k for k, v in TIMEFRAMES.items()}

RATE_DTYPE = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
                       ("tick_volume", "<u8"), ("spread", "<i4"), ("real_volume", "<u8")])
TICK_DTYPE = np.dtype([("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"), ("volume", "<u8"),
                       ("time_msc", "<i8"), ("flags", "<u4"), ("volume_real", "<f8")])

OrderSendResult = namedtuple("OrderSendResult", [*list(contract.RESULT_FIELDS), "request"])


def _nt(name: str, record: dict[str, Any]) -> Any:
    return namedtuple(name, list(record))(**record)


def _naive(ts: datetime | int | float) -> datetime:
    # The package compares the datetime's (or the number's) epoch value with its server-time stamps.
    if isinstance(ts, int | float):
        return contract.from_epoch_s(ts)
    return ts.replace(tzinfo=None) if ts.tzinfo is not None else ts


def make_module(market: SimMarket, *, call_delay: float = 0.0) -> types.ModuleType:
    mod = types.ModuleType("MetaTrader5")
    state = {"in_flight": 0, "max_in_flight": 0, "calls": 0, "initialized": False, "error": (1, "Success"),
             "next_order_send": None}
    lock = threading.Lock()
    mod.state = state  # type: ignore[attr-defined]

    for name, value in TIMEFRAMES.items():
        setattr(mod, f"TIMEFRAME_{name}", value)
    consts = {"TRADE_ACTION_DEAL": 1, "TRADE_ACTION_PENDING": 5, "TRADE_ACTION_SLTP": 6, "TRADE_ACTION_MODIFY": 7,
              "TRADE_ACTION_REMOVE": 8, "ORDER_TYPE_BUY": 0, "ORDER_TYPE_SELL": 1, "ORDER_TYPE_BUY_LIMIT": 2,
              "ORDER_TYPE_SELL_LIMIT": 3, "ORDER_FILLING_FOK": 0, "ORDER_FILLING_IOC": 1,
              "ORDER_FILLING_RETURN": 2, "ORDER_TIME_GTC": 0, "COPY_TICKS_ALL": -1,
              "TRADE_RETCODE_DONE": 10009, "TRADE_RETCODE_PLACED": 10008, "TRADE_RETCODE_INVALID_FILL": 10030,
              "POSITION_TYPE_BUY": 0, "POSITION_TYPE_SELL": 1, "DEAL_TYPE_BUY": 0, "DEAL_TYPE_SELL": 1}
    for name, value in consts.items():
        setattr(mod, name, value)

    def tracked(fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                state["in_flight"] += 1
                state["calls"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            try:
                if call_delay:
                    time.sleep(call_delay)
                if fn.__name__ in state.get("broken", ()):  # the terminal's IPC link is down
                    fail(-10004, "No IPC connection")
                    return None
                return fn(*args, **kwargs)
            finally:
                with lock:
                    state["in_flight"] -= 1
        wrapper.__name__ = fn.__name__
        return wrapper

    def fail(code: int, msg: str) -> None:
        state["error"] = (code, msg)

    @tracked
    def initialize(**kwargs: Any) -> bool:
        state["initialized"] = True
        state["init_kwargs"] = kwargs
        return True

    @tracked
    def shutdown() -> None:
        state["initialized"] = False

    def last_error() -> tuple[int, str]:
        return state["error"]

    @tracked
    def terminal_info() -> Any:
        return _nt("TerminalInfo", {"connected": True, "trade_allowed": True, "name": "fake terminal"})

    @tracked
    def account_info() -> Any:
        return _nt("AccountInfo", {**market.account_info(), "password": "never-served"})

    @tracked
    def symbol_info(symbol: str) -> Any:
        try:
            return _nt("SymbolInfo", market.symbol_info(symbol))
        except InvalidRequestError:
            fail(-1, "Terminal: Call failed")
            return None

    @tracked
    def symbol_select(symbol: str, enable: bool = True) -> bool:
        return True

    @tracked
    def symbol_info_tick(symbol: str) -> Any:
        try:
            t = market.symbol_info_tick(symbol)
        except InvalidRequestError:
            return None
        return _nt("Tick", {"time": t["time"], "bid": t["bid"], "ask": t["ask"], "last": t["last"],
                            "volume": t["volume"], "time_msc": t["time_msc"], "flags": 6, "volume_real": 0.0})

    def _rates(records: list[dict[str, Any]]) -> np.ndarray:
        out = np.zeros(len(records), dtype=RATE_DTYPE)
        for i, r in enumerate(records):
            out[i] = (contract.epoch_s(datetime.fromisoformat(r["time"])), r["open"], r["high"], r["low"], r["close"],
                      r["tick_volume"], r["spread"], int(r["real_volume"]))
        return out

    def unknown_is_none(fn: Any) -> Any:
        """The package answers an unknown symbol with None (and last_error), never an exception."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except InvalidRequestError:
                fail(-1, "Terminal: Call failed")
                return None
        wrapper.__name__ = fn.__name__
        return wrapper

    @tracked
    @unknown_is_none
    def copy_rates_from_pos(symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
        return _rates(market.rates_from_pos(symbol, parse(_TF_BY_CONST[timeframe]), start_pos, count))

    @tracked
    @unknown_is_none
    def copy_rates_range(symbol: str, timeframe: int, date_from: datetime, date_to: datetime) -> Any:
        return _rates(market.rates_range(symbol, parse(_TF_BY_CONST[timeframe]), _naive(date_from), _naive(date_to)))

    @tracked
    def copy_ticks_range(symbol: str, date_from: datetime, date_to: datetime, flags: int) -> Any:
        ticks = market.ticks_range(symbol, _naive(date_from), _naive(date_to))
        out = np.zeros(len(ticks), dtype=TICK_DTYPE)
        for i, t in enumerate(ticks):
            out[i] = (t["time_msc"] // 1000, t["bid"], t["ask"], t["last"], int(t["volume"]), t["time_msc"], 6,
                      float(t["volume"]))
        return out

    @tracked
    def order_send(request: dict[str, Any]) -> Any:
        mode = state["next_order_send"]
        state["next_order_send"] = None
        if mode == "none_before":  # lost before reaching the trade server
            fail(-10004, "No IPC connection")
            return None
        try:
            req = contract.parse_order({k: v for k, v in request.items() if k != "type_time"})
        except InvalidRequestError as exc:  # the terminal refuses a malformed request with a retcode
            res = contract.result(contract.RETCODE_INVALID, comment=str(exc)[:60])
            return OrderSendResult(**{k: res[k] for k in contract.RESULT_FIELDS}, request=None)
        res = market.order_send(req)
        if mode == "timeout_after":  # executed, but the terminal reports a timeout
            res = {**res, "retcode": contract.RETCODE_TIMEOUT, "comment": "Request timeout"}
        return OrderSendResult(**{k: res[k] for k in contract.RESULT_FIELDS}, request=None)

    @tracked
    def positions_get(symbol: str | None = None, ticket: int | None = None) -> Any:
        rows = market.positions(symbol)
        if ticket is not None:
            rows = [p for p in rows if p["ticket"] == ticket]
        return tuple(_nt("TradePosition", p) for p in rows)

    @tracked
    def positions_total() -> int:
        return len(market.positions(None))

    @tracked
    def orders_get(symbol: str | None = None) -> Any:
        return tuple(_nt("TradeOrder", o) for o in market.orders(symbol))

    far_past, far_future = datetime(1970, 1, 1), datetime(2100, 1, 1)

    @tracked
    def history_deals_get(date_from: Any = None, date_to: Any = None, *, position: int | None = None) -> Any:
        # As the package: a range, or ``position=`` alone (every deal of that position).
        lo, hi = (far_past, far_future) if date_from is None else (_naive(date_from), _naive(date_to))
        rows = market.history_deals(lo, hi)
        if position is not None:
            rows = [d for d in rows if d["position_id"] == position]
        return tuple(_nt("TradeDeal", d) for d in rows)

    @tracked
    def history_orders_get(date_from: Any = None, date_to: Any = None, *, ticket: int | None = None) -> Any:
        lo, hi = (far_past, far_future) if date_from is None else (_naive(date_from), _naive(date_to))
        rows = market.history_orders(lo, hi)
        if ticket is not None:
            rows = [o for o in rows if o["ticket"] == ticket]
        return tuple(_nt("TradeOrder", o) for o in rows)

    for fn in (initialize, shutdown, last_error, terminal_info, account_info, symbol_info, symbol_select,
               symbol_info_tick, copy_rates_from_pos, copy_rates_range, copy_ticks_range, order_send, positions_get,
               positions_total, orders_get, history_deals_get, history_orders_get):
        setattr(mod, fn.__name__, fn)
    return mod
