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
from engine.mt5.bridge.orders import BridgeOrders
from engine.mt5.bridge.records import as_dict, pick
from engine.timeframes import Timeframe

# last_error() codes meaning the terminal link is down (temporary), per the package docs.
_IPC_ERRORS = {-10001, -10002, -10003, -10004, -10005}


def load_mt5() -> ModuleType:
    try:
        return importlib.import_module("MetaTrader5")
    except ImportError:
        raise OperationalError("the MetaTrader5 package is not installed: the bridge runs on the Windows host of "
                               "the terminal (pip install MetaTrader5); on other systems use the simulator") from None


class MT5Backend(BridgeOrders):
    """Serves the contract from a running MetaTrader 5 terminal (reads here, orders in BridgeOrders).

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
            info = as_dict(self._call("terminal_info"))
        except (OperationalError, RetryableError) as exc:
            return {"status": "error", "connected": False, "error": str(exc),
                    "time_utc": contract.iso(datetime.now(UTC).replace(tzinfo=None))}
        return {"status": "ok" if info.get("connected", True) else "error", "connected": bool(info.get("connected")),
                "server": str(as_dict(self._call("account_info")).get("server", "")),
                "time_utc": contract.iso(datetime.now(UTC).replace(tzinfo=None)), "version": "engine-bridge/1"}

    def account_info(self) -> dict[str, Any]:
        info = as_dict(self._call("account_info"))
        if not info:
            raise RetryableError("account_info unavailable; is the terminal logged in?")
        return pick(info, contract.ACCOUNT_FIELDS, ("name",))

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        return pick(as_dict(self._call("symbol_info", symbol)), contract.SYMBOL_FIELDS, ("description",))

    def symbol_info_tick(self, symbol: str) -> dict[str, Any]:
        self._check_symbol(symbol)
        tick = as_dict(self._call("symbol_info_tick", symbol))
        if not tick:
            raise RetryableError(f"no tick for {symbol} yet; retry shortly")
        return pick(tick, contract.SYMBOL_TICK_FIELDS)

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
        return [pick(as_dict(p), contract.POSITION_FIELDS) for p in rows or ()]

    def orders(self, symbol: str | None) -> list[dict[str, Any]]:
        rows = self._call("orders_get", symbol=symbol) if symbol else self._call("orders_get")
        return [self._order_dict(as_dict(o)) for o in rows or ()]

    @staticmethod
    def _order_dict(o: dict[str, Any]) -> dict[str, Any]:
        return pick(o, contract.ORDER_FIELDS)

    def history_deals(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = self._call("history_deals_get", self._utc_tag(start), self._utc_tag(end))
        return [pick(as_dict(d), contract.DEAL_FIELDS, ("fee",)) for d in rows or ()]

    def history_orders(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = self._call("history_orders_get", self._utc_tag(start), self._utc_tag(end))
        return [self._order_dict(as_dict(o)) for o in rows or ()]
