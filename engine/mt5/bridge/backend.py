"""The contract's backend over the MetaTrader5 package (one terminal, one process).

The package talks to the terminal over one IPC channel and is not thread-safe, so every call goes
through one lock. Times: the package's stamps are broker server time written as epoch seconds; they
are passed through unchanged (as naive ISO for bars/ticks), and range parameters are handed back as
UTC-tagged datetimes of the same wall values, which the package compares against those stamps.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from engine.errors import InvalidRequestError, OperationalError, RetryableError
from engine.mt5 import contract
from engine.timeframes import Timeframe

# last_error() codes meaning the terminal link is down (temporary), per the package docs.
_IPC_ERRORS = {-10001, -10002, -10003, -10004, -10005}


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    return dict(obj)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


def _pick(record: dict[str, Any], fields: tuple[str, ...], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: _plain(record.get(k, 0)) for k in fields + extra}


def _name_of(value: int, names: dict[str, int]) -> str:
    return next(name for name, number in names.items() if number == value)


def load_mt5() -> ModuleType:
    try:
        return importlib.import_module("MetaTrader5")
    except ImportError:
        raise OperationalError("the MetaTrader5 package is not installed: the bridge runs on the Windows host of "
                               "the terminal (pip install MetaTrader5); on other systems use the simulator") from None


def package_request(mt5: ModuleType, req: contract.OrderRequest, price: float) -> dict[str, Any]:
    """An ``order_send`` request dict in the package's constants (they carry the contract's names:
    TRADE_ACTION_DEAL, ORDER_TYPE_BUY_LIMIT, ...)."""
    action = getattr(mt5, "TRADE_ACTION_" + _name_of(req.action, contract.ACTIONS))
    if req.action == contract.TRADE_ACTION_REMOVE:
        return {"action": action, "order": req.order}
    if req.action == contract.TRADE_ACTION_SLTP:
        out = {"action": action, "position": req.position, "sl": float(req.sl), "tp": float(req.tp)}
        return {**out, "symbol": req.symbol} if req.symbol else out
    order_type = getattr(mt5, "ORDER_TYPE_" + _name_of(req.type, contract.ORDER_TYPES))
    filling = getattr(mt5, "ORDER_FILLING_" + _name_of(req.type_filling, contract.FILLINGS))
    out = {"action": action, "symbol": req.symbol, "volume": float(req.volume), "type": order_type,
           "price": float(price), "sl": float(req.sl), "tp": float(req.tp), "deviation": int(req.deviation),
           "magic": int(req.magic), "comment": req.comment, "type_time": mt5.ORDER_TIME_GTC,
           "type_filling": filling}
    if req.position:
        out["position"] = int(req.position)
    return out


class MT5Backend:
    """Serves the contract from a running MetaTrader 5 terminal.

    ``mt5``: the MetaTrader5 module (loaded on first use when None). ``symbols``: if given, the only
    symbols served. ``initialize_kwargs``: passed to ``mt5.initialize`` (path, login, password,
    server, timeout); the password is never logged or echoed.
    """

    def __init__(self, mt5: ModuleType | None = None, *, symbols: tuple[str, ...] = (),
                 initialize_kwargs: dict[str, Any] | None = None) -> None:
        self._mt5 = mt5
        self.symbols = tuple(symbols)
        self._init_kwargs = dict(initialize_kwargs or {})
        self._lock = threading.Lock()
        self._connected = False

    def __repr__(self) -> str:
        return f"MT5Backend(symbols={self.symbols!r}, connected={self._connected})"

    @property
    def mt5(self) -> ModuleType:
        if self._mt5 is None:
            self._mt5 = load_mt5()
        return self._mt5

    def connect(self) -> None:
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if not self._connected:
            if not self.mt5.initialize(**self._init_kwargs):
                code, msg = self._last_error()
                raise OperationalError(f"MetaTrader5.initialize failed ({code}: {msg}); is the terminal running "
                                       "and logged in?")
            self._connected = True

    def shutdown(self) -> None:
        with self._lock:
            if self._connected:
                self.mt5.shutdown()
                self._connected = False

    def last_error(self) -> tuple[int, str]:
        """The package's last error (the quant-server bridge's /last_error)."""
        with self._lock:
            return self._last_error()

    def _last_error(self) -> tuple[int, str]:
        try:
            code, msg = self.mt5.last_error()
            return int(code), str(msg)
        except Exception:  # a broken package must not hide the original failure
            return 0, "unknown"

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """One package call under the lock; IPC failures become RetryableError (HTTP 503)."""
        with self._lock:
            self._connect_locked()
            out = getattr(self.mt5, name)(*args, **kwargs)
            if out is None:
                code, msg = self._last_error()
                if code in _IPC_ERRORS:
                    self._connected = False
                    raise RetryableError(f"terminal link lost during {name} ({code}: {msg}); retry shortly")
            return out

    def _locked(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self._connect_locked()
            return fn()

    def _check_symbol(self, symbol: str) -> None:
        if self.symbols and symbol not in self.symbols:
            raise InvalidRequestError(f"symbol {symbol!r} is not served by this bridge; allowed: "
                                      f"{', '.join(self.symbols)}", status=404)
        if self._call("symbol_info", symbol) is None:
            raise InvalidRequestError(f"unknown symbol {symbol!r} on this terminal", status=404)
        self._call("symbol_select", symbol, True)

    def _tf(self, tf: Timeframe) -> int:
        const = getattr(self.mt5, f"TIMEFRAME_{tf.mt5}", None)
        if const is None:
            raise InvalidRequestError(f"timeframe {tf.mt5} is not supported by the MetaTrader5 package")
        return int(const)

    @staticmethod
    def _utc_tag(ts: datetime) -> datetime:
        return ts.replace(tzinfo=UTC)

    # -- read API --------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        try:
            info = _as_dict(self._call("terminal_info"))
        except (OperationalError, RetryableError) as exc:
            return {"status": "error", "connected": False, "error": str(exc),
                    "time_utc": contract.iso(datetime.now(UTC).replace(tzinfo=None))}
        return {"status": "ok" if info.get("connected", True) else "error", "connected": bool(info.get("connected")),
                "server": str(_as_dict(self._call("account_info")).get("server", "")),
                "time_utc": contract.iso(datetime.now(UTC).replace(tzinfo=None)), "version": "engine-bridge/1"}

    def account_info(self) -> dict[str, Any]:
        info = _as_dict(self._call("account_info"))
        if not info:
            raise RetryableError("account_info unavailable; is the terminal logged in?")
        return _pick(info, contract.ACCOUNT_FIELDS, ("name",))

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        return _pick(_as_dict(self._call("symbol_info", symbol)), contract.SYMBOL_FIELDS, ("description",))

    def symbol_info_tick(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        tick = _as_dict(self._call("symbol_info_tick", symbol))
        if not tick:
            raise RetryableError(f"no tick for {symbol} yet; retry shortly")
        return _pick(tick, contract.SYMBOL_TICK_FIELDS)

    @staticmethod
    def _bars(rates: Any) -> list[dict[str, Any]]:
        if rates is None or len(rates) == 0:
            return []
        times = [contract.iso(contract.from_epoch_s(int(t))) for t in rates["time"].tolist()]
        cols = {k: rates[k].tolist() for k in ("open", "high", "low", "close", "tick_volume", "spread",
                                               "real_volume")}
        return [{"time": t, **{k: cols[k][i] for k in cols}} for i, t in enumerate(times)]

    def rates_from_pos(self, symbol: str, tf: Timeframe, start_pos: int, count: int) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        return self._bars(self._call("copy_rates_from_pos", symbol, self._tf(tf), start_pos, count))

    def rates_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        rates = self._call("copy_rates_range", symbol, self._tf(tf), self._utc_tag(start), self._utc_tag(end))
        return self._bars(rates)

    def ticks_range(self, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        self._check_symbol(symbol)
        ticks = self._call("copy_ticks_range", symbol, self._utc_tag(start),
                           self._utc_tag(end + timedelta(milliseconds=999)), self.mt5.COPY_TICKS_ALL)
        if ticks is None or len(ticks) == 0:
            return []
        cols = {k: ticks[k].tolist() for k in ("time_msc", "bid", "ask", "last", "volume")}
        return [{"time": contract.iso(contract.from_epoch_s(ms // 1000)), "time_msc": ms, "bid": cols["bid"][i],
                 "ask": cols["ask"][i], "last": cols["last"][i], "volume": cols["volume"][i]}
                for i, ms in enumerate(cols["time_msc"])]

    def positions(self, symbol: str | None) -> list[dict[str, Any]]:
        rows = self._call("positions_get", symbol=symbol) if symbol else self._call("positions_get")
        return [_pick(_as_dict(p), contract.POSITION_FIELDS) for p in rows or ()]

    def orders(self, symbol: str | None) -> list[dict[str, Any]]:
        rows = self._call("orders_get", symbol=symbol) if symbol else self._call("orders_get")
        return [self._order_dict(_as_dict(o)) for o in rows or ()]

    @staticmethod
    def _order_dict(o: dict[str, Any]) -> dict[str, Any]:
        return _pick(o, contract.ORDER_FIELDS)

    def history_deals(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = self._call("history_deals_get", self._utc_tag(start), self._utc_tag(end))
        return [_pick(_as_dict(d), contract.DEAL_FIELDS, ("fee",)) for d in rows or ()]

    def history_orders(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = self._call("history_orders_get", self._utc_tag(start), self._utc_tag(end))
        return [self._order_dict(_as_dict(o)) for o in rows or ()]

    # -- trading ----------------------------------------------------------------------------------------
    def _send(self, request: dict[str, Any], req: contract.OrderRequest) -> dict[str, Any]:
        """order_send under the lock; an unknown outcome is reconciled by magic+comment before answering."""
        mt5 = self.mt5
        res = mt5.order_send(request)
        payload = _as_dict(res)
        if not payload:
            code, msg = self._last_error()
            payload = contract.result(contract.RETCODE_CONNECTION,
                                      comment=f"order_send returned nothing ({code}: {msg})")
        payload = {k: _plain(payload.get(k, 0)) for k in contract.RESULT_FIELDS}
        if int(payload["retcode"]) in contract.RECONCILE_RETCODES and req.comment:
            found = self._find_locked(req)
            if found is not None:
                return found
        return payload

    def _find_locked(self, req: contract.OrderRequest) -> dict[str, Any] | None:
        start, end = datetime(1970, 1, 2, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        for d in reversed(self.mt5.history_deals_get(start, end) or ()):
            deal = _as_dict(d)
            if deal.get("comment") == req.comment and deal.get("magic") == req.magic:
                return contract.result(contract.RETCODE_DONE, deal=int(deal["ticket"]),
                                       order=int(deal.get("order", 0)), volume=float(deal.get("volume", 0)), price=float(deal.get("price", 0)),
                                       comment="found by magic+comment")
        for o in self.mt5.orders_get() or ():
            order = _as_dict(o)
            if order.get("comment") == req.comment and order.get("magic") == req.magic:
                return contract.result(contract.RETCODE_PLACED, order=int(order["ticket"]),
                                       volume=float(order.get("volume_initial", 0)),
                                       price=float(order.get("price_open", 0)), comment="found by magic+comment")
        return None

    def order_send(self, req: contract.OrderRequest) -> dict[str, Any]:
        if req.action not in (contract.TRADE_ACTION_REMOVE, contract.TRADE_ACTION_SLTP):
            self._check_symbol(req.symbol)

        def run() -> dict[str, Any]:
            price = req.price
            if req.action == contract.TRADE_ACTION_DEAL and price <= 0:
                tick = _as_dict(self.mt5.symbol_info_tick(req.symbol))
                if not tick:
                    return contract.result(contract.RETCODE_PRICE_OFF, comment="no quote for the symbol")
                price = float(tick["ask"] if req.type == contract.ORDER_TYPE_BUY else tick["bid"])
            return self._send(package_request(self.mt5, req, price), req)

        return self._locked(run)

    def close_position(self, ticket: int, volume: float | None, deviation: int, magic: int,
                       comment: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            found = self.mt5.positions_get(ticket=ticket)
            if not found:
                return contract.result(contract.RETCODE_POSITION_CLOSED, comment=f"no open position {ticket}")
            pos = _as_dict(found[0])
            tick = _as_dict(self.mt5.symbol_info_tick(pos["symbol"]))
            if not tick:
                return contract.result(contract.RETCODE_PRICE_OFF, comment="no quote for the symbol")
            buy_pos = int(pos["type"]) == contract.POSITION_TYPE_BUY
            req = contract.OrderRequest(action=contract.TRADE_ACTION_DEAL, symbol=str(pos["symbol"]),
                                        volume=float(pos["volume"] if volume is None else volume),
                                        type=contract.ORDER_TYPE_SELL if buy_pos else contract.ORDER_TYPE_BUY,
                                        deviation=deviation,
                                        magic=magic or int(pos.get("magic", 0)), comment=comment, position=ticket)
            return self._send(package_request(self.mt5, req, float(tick["bid"] if buy_pos else tick["ask"])), req)

        return self._locked(run)
