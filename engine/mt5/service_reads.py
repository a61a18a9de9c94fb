"""The contract's GET routes over a Backend: parameters checked, filters honoured, answers shaped.

Parameters arrive typed (the ASGI layer validated them against engine.mt5.spec); what is checked here is
their meaning: time formats and ranges, the bar and tick caps, the filters the quant-server bridge honours
(``magic``, ``position``, ``ticket``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.errors import InvalidRequestError
from engine.mt5 import contract

if TYPE_CHECKING:
    from engine.mt5.service import Backend

_FAR_PAST = datetime(1970, 1, 1)
_FAR_FUTURE = datetime(2100, 1, 1)


def _server_range(params: Mapping[str, Any]) -> tuple[datetime, datetime]:
    start = contract.parse_server_time(params.get("start"), "start")
    end = contract.parse_server_time(params.get("end"), "end")
    contract.check_range(start, end)
    return start, end


def _history_range(params: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """from_date/to_date (the shared names: naive or Z), else start/end (strict naive), else everything."""
    if params.get("from_date") or params.get("to_date"):
        start = contract.parse_history_time(params["from_date"], "from_date") if params.get("from_date") \
            else _FAR_PAST
        end = contract.parse_history_time(params["to_date"], "to_date") if params.get("to_date") else _FAR_FUTURE
    else:
        start = contract.parse_server_time(params["start"], "start") if params.get("start") else _FAR_PAST
        end = contract.parse_server_time(params["end"], "end") if params.get("end") else _FAR_FUTURE
    contract.check_range(start, end)
    return start, end


def _timeframe(params: Mapping[str, Any]) -> Any:
    return contract.timeframe(params.get("timeframe") or "M1")


class Reads:
    def __init__(self, backend: Backend, *, max_bars: int, max_ticks: int) -> None:
        self.backend = backend
        self.max_bars = max_bars
        self.max_ticks = max_ticks

    def answer(self, route: str, params: Mapping[str, Any]) -> Any:
        handler = self._ROUTES.get(route)
        if handler is None:
            raise InvalidRequestError(f"no route GET {route}; see docs/mt5_rest_api.md", status=404)
        return handler(self, params)

    def _health(self, params: Mapping[str, Any]) -> Any:
        health = dict(self.backend.health())
        connected = bool(health.get("connected"))
        # The quant-server bridge's keys, beside ours (time_utc for offset measurement, version).
        health.update(status="healthy" if connected else "error", mt5_connected=connected,
                      mt5_initialized=connected)
        return health

    def _fetch_data_pos(self, params: Mapping[str, Any]) -> Any:
        tf = _timeframe(params)
        count = params.get("num_bars", 100)
        if count is None or count < 0:
            raise InvalidRequestError(f"num_bars must be >= 0, got {count}")
        if count > self.max_bars:
            raise InvalidRequestError(f"num_bars={count} is over this server's cap of {self.max_bars}; "
                                      "fetch in chunks (fetch_data_range) of at most that many bars")
        start_pos = params.get("start_pos") or 0
        if start_pos < 0:
            raise InvalidRequestError(f"start_pos must be >= 0, got {start_pos}")
        return self.backend.rates_from_pos(params["symbol"], tf, start_pos, count)

    def _fetch_data_range(self, params: Mapping[str, Any]) -> Any:
        tf = _timeframe(params)
        start, end = _server_range(params)
        span = int((end - start).total_seconds() // tf.seconds) + 1
        if span > self.max_bars:
            raise InvalidRequestError(f"range {contract.iso(start)}..{contract.iso(end)} spans {span} {tf.mt5} "
                                      f"bars, over this server's cap of {self.max_bars}; fetch it in chunks")
        return self.backend.rates_range(params["symbol"], tf, start, end)

    def _fetch_ticks_range(self, params: Mapping[str, Any]) -> Any:
        start, end = _server_range(params)
        ticks = self.backend.ticks_range(params["symbol"], start, end)
        if len(ticks) > self.max_ticks:
            raise InvalidRequestError(f"range holds {len(ticks)} ticks, over this server's cap of "
                                      f"{self.max_ticks}; fetch shorter ranges")
        return ticks

    def _positions(self, params: Mapping[str, Any]) -> Any:
        rows = self.backend.positions(params.get("symbol"))
        if params.get("magic") is not None:
            rows = [p for p in rows if p["magic"] == params["magic"]]
        # That bridge's shape: a bare list, or {"positions": []} when there are none.
        return rows if rows else {"positions": []}

    def _history_deals(self, params: Mapping[str, Any]) -> Any:
        rows = self.backend.history_deals(*_history_range(params))
        if params.get("position") is not None:
            rows = [d for d in rows if d["position_id"] == params["position"]]
        return rows

    def _history_orders(self, params: Mapping[str, Any]) -> Any:
        rows = self.backend.history_orders(*_history_range(params))
        if params.get("ticket") is not None:
            rows = [o for o in rows if o["ticket"] == params["ticket"]]
        return rows

    def _deal_summary(self, params: Mapping[str, Any]) -> Any:
        """A position's deals summed up, in the shape of that bridge's get_deal_from_ticket."""
        ticket = params["ticket"]
        deals = [d for d in self.backend.history_deals(_FAR_PAST, _FAR_FUTURE) if d["position_id"] == ticket]
        if not deals:
            raise InvalidRequestError("Failed to get deal information", status=404)
        first, last = deals[0], deals[-1]
        return {"ticket": ticket, "symbol": first["symbol"],
                "type": "BUY" if first["type"] == contract.ORDER_TYPE_BUY else "SELL",
                "volume": sum(d["volume"] for d in deals),
                "open_time": contract.iso(contract.from_epoch_s(min(d["time"] for d in deals))),
                "close_time": contract.iso(contract.from_epoch_s(max(d["time"] for d in deals))),
                "open_price": first["price"], "close_price": last["price"],
                "profit": sum(d["profit"] for d in deals), "commission": sum(d["commission"] for d in deals),
                "swap": sum(d["swap"] for d in deals), "comment": last["comment"]}

    def _order_from_ticket(self, params: Mapping[str, Any]) -> Any:
        found = [o for o in self.backend.history_orders(_FAR_PAST, _FAR_FUTURE) if o["ticket"] == params["ticket"]]
        if not found:
            raise InvalidRequestError("Failed to get order information", status=404)
        return found[0]

    def _last_error(self, params: Mapping[str, Any]) -> Any:
        code, message = self.backend.last_error()
        return {"error_code": code, "error_message": message}

    _ROUTES: Mapping[str, Callable[[Reads, Mapping[str, Any]], Any]] = {
        "/health": _health,
        "/account_info": lambda self, p: self.backend.account_info(),
        "/symbol_info": lambda self, p: self.backend.symbol_info(p["symbol"]),
        "/symbol_info_tick": lambda self, p: self.backend.symbol_info_tick(p["symbol"]),
        "/fetch_data_pos": _fetch_data_pos,
        "/fetch_data_range": _fetch_data_range,
        "/fetch_ticks_range": _fetch_ticks_range,
        "/get_positions": _positions,
        "/positions_total": lambda self, p: {"total": len(self.backend.positions(None))},
        "/orders_get": lambda self, p: self.backend.orders(p.get("symbol")),
        "/history_deals_get": _history_deals,
        "/history_orders_get": _history_orders,
        "/get_deal_from_ticket": _deal_summary,
        "/get_order_from_ticket": _order_from_ticket,
        "/last_error": _last_error,
        "/last_error_str": lambda self, p: {"error_message": self.backend.last_error()[1]},
    }
