"""The contract's routes as data: paths, parameters, bodies and answers (docs/mt5_rest_api.md, "Routes").

The ASGI server (engine.mt5.asgi) is generated from this table (routing, parameter validation and the
OpenAPI document at ``/openapi.json``), and a test checks the document against the docs. ``shared`` marks
what the most deployed open-source MT5 Flask bridge (metatrader5-quant-server-python) also has: there
the same paths, names, bodies, wrappers and status codes hold. The rest are this contract's additions.
No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # OpenAPI type: string, integer
    required: bool = False
    default: Any = None
    shared: bool = True  # the quant-server bridge reads it too
    description: str = ""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of the request body (POST)
    answer: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    statuses: tuple[int, ...] = (200,)
    shared: bool = True
    auth: bool = True

    @property
    def name(self) -> str:
        """The route's first path segment: /symbol_info/{symbol} -> /symbol_info (how handlers are keyed)."""
        return "/" + self.path.strip("/").split("/")[0]


def _obj(*required: str, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


def _list(item: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_S, _I, _N = {"type": "string"}, {"type": "integer"}, {"type": "number"}
_ENUM_OR_NAME = {"oneOf": [_I, _S]}  # MT5 numbers, or their names ("BUY", "ORDER_FILLING_IOC")

SYMBOL = Param("symbol", required=True, description="symbol name, e.g. BTCUSD")
TIMEFRAME = Param("timeframe", default="M1", description="MT5 timeframe: M1..MN1")
START = Param("start", required=True, shared=True, description="naive ISO time in broker server time")
END = Param("end", required=True, shared=True, description="naive ISO time in broker server time, inclusive")

ORDER_BODY = _obj("symbol", "volume", "type", symbol=_S, volume=_N, type=_ENUM_OR_NAME, deviation=_I, magic=_I,
                  comment={"type": "string", "maxLength": 31}, type_filling=_ENUM_OR_NAME, sl=_N, tp=_N,
                  action=_ENUM_OR_NAME, price=_N, position=_I, order=_I, type_time=_I, expiration=_I,
                  stoplimit=_N)
CLOSE_BODY = _obj("position", position=_obj("ticket", ticket=_I, type=_I, symbol=_S, volume=_N),
                  deviation=_I, magic=_I, comment={"type": "string", "maxLength": 31})
CLOSE_ALL_BODY = _obj(order_type={"type": "string", "enum": ["BUY", "SELL", "all"]}, magic=_I)
SLTP_BODY = _obj("position", position=_I, sl=_N, tp=_N)
WRAPPED_RESULT = _obj("message", "result", message=_S, result=_ref("OrderResult"))

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "liveness, connection and the server's UTC clock", auth=False,
          answer=_obj("status", status=_S, mt5_connected={"type": "boolean"}, mt5_initialized={"type": "boolean"},
                      connected={"type": "boolean"}, time_utc=_S, server=_S, version=_S)),
    Route("GET", "/account_info", "balance, equity and margin of the logged-in account", shared=False,
          answer=_ref("AccountInfo"), statuses=(200, 503)),
    Route("GET", "/symbol_info/{symbol}", "a symbol's specification and quote",
          params=(Param("symbol", required=True, description="symbol name"),), answer=_ref("SymbolInfo"),
          statuses=(200, 404)),
    Route("GET", "/symbol_info_tick/{symbol}", "the symbol's latest tick",
          params=(Param("symbol", required=True, description="symbol name"),), answer=_ref("Tick"),
          statuses=(200, 404)),
    Route("GET", "/fetch_data_pos", "the latest bars, oldest first; the last one is forming",
          params=(SYMBOL, TIMEFRAME, Param("num_bars", "integer", default=100, description="how many bars"),
                  Param("start_pos", "integer", default=0, shared=False, description="bars back from the "
                                                                                      "forming one")),
          answer=_list("Bar"), statuses=(200, 400, 404)),
    Route("GET", "/fetch_data_range", "bars opening in [start, end]",
          params=(SYMBOL, TIMEFRAME, START, END), answer=_list("Bar"), statuses=(200, 400, 404)),
    Route("GET", "/fetch_ticks_range", "ticks in [start, end]", shared=False,
          params=(SYMBOL, Param("start", required=True, shared=False, description="naive ISO server time"),
                  Param("end", required=True, shared=False, description="naive ISO server time, inclusive")),
          answer=_list("Tick"), statuses=(200, 400, 404)),
    Route("GET", "/get_positions", "open positions: a list, or {\"positions\": []} when there are none",
          params=(Param("magic", "integer", description="only this magic number"),
                  Param("symbol", shared=False, description="only this symbol")),
          answer={"oneOf": [_list("Position"), _obj("positions", positions={"type": "array", "maxItems": 0})]}),
    Route("GET", "/positions_total", "how many positions are open", answer=_obj("total", total=_I)),
    Route("GET", "/orders_get", "pending orders", shared=False,
          params=(Param("symbol", shared=False, description="only this symbol"),), answer=_list("Order")),
    Route("GET", "/history_deals_get", "deals, optionally of one position and within a time range",
          params=(Param("from_date", description="ISO time (server time; naive or Z)"),
                  Param("to_date", description="ISO time (server time; naive or Z), inclusive"),
                  Param("position", "integer", description="only deals of this position"),
                  Param("start", shared=False, description="naive ISO server time"),
                  Param("end", shared=False, description="naive ISO server time, inclusive")),
          answer=_list("Deal"), statuses=(200, 400)),
    Route("GET", "/history_orders_get", "orders that are done, filled or cancelled",
          params=(Param("ticket", "integer", description="only this order"),
                  Param("start", shared=False, description="naive ISO server time"),
                  Param("end", shared=False, description="naive ISO server time, inclusive")),
          answer=_list("Order"), statuses=(200, 400)),
    Route("GET", "/get_deal_from_ticket", "a position's deals summed up (open and close)",
          params=(Param("ticket", "integer", required=True, description="the position ticket"),),
          answer=_ref("DealSummary"), statuses=(200, 400, 404)),
    Route("GET", "/get_order_from_ticket", "one order from the history",
          params=(Param("ticket", "integer", required=True, description="the order ticket"),),
          answer=_ref("Order"), statuses=(200, 400, 404)),
    Route("GET", "/last_error", "the terminal's last error",
          answer=_obj("error_code", "error_message", error_code=_I, error_message=_S)),
    Route("GET", "/last_error_str", "the terminal's last error message", answer=_obj("error_message", error_message=_S)),
    Route("POST", "/order", "order_send: market orders (shared); limit orders and cancels (additions)",
          body=ORDER_BODY, answer=WRAPPED_RESULT, statuses=(200, 400, 422)),
    Route("POST", "/close_position", "close (part of) a position with an opposite deal", body=CLOSE_BODY,
          answer=WRAPPED_RESULT, statuses=(200, 400, 422)),
    Route("POST", "/close_all_positions", "close every position (of a side, of a magic)", body=CLOSE_ALL_BODY,
          answer=_obj("message", message=_S, results={"type": "array", "items": _ref("OrderResult")}),
          statuses=(200, 422)),
    Route("POST", "/modify_sl_tp", "set a position's stop loss and take profit", body=SLTP_BODY,
          answer=WRAPPED_RESULT, statuses=(200, 400, 422)),
)

ROUTES_BY_NAME = {(r.method, r.name): r for r in ROUTES}


def _fields(*names: str, strings: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": {n: _S if n in strings else _N for n in names},
            "required": list(names)}


def schemas() -> dict[str, Any]:
    """The record shapes (docs/mt5_rest_api.md, "Record shapes") as OpenAPI component schemas."""
    from engine.mt5 import contract

    return {
        "Bar": _fields(*contract.BAR_FIELDS, strings=("time",)),
        "Tick": _fields(*contract.TICK_FIELDS, strings=("time",)),
        "AccountInfo": _fields(*contract.ACCOUNT_FIELDS, strings=("server", "currency")),
        "SymbolInfo": _fields(*contract.SYMBOL_FIELDS, strings=("name", "currency_base", "currency_profit")),
        "Position": _fields(*contract.POSITION_FIELDS, strings=("symbol", "comment", "external_id")),
        "Order": _fields(*contract.ORDER_FIELDS, strings=("symbol", "comment")),
        "Deal": _fields(*contract.DEAL_FIELDS, strings=("symbol", "comment")),
        "OrderResult": _fields(*contract.RESULT_FIELDS, strings=("comment",)),
        "DealSummary": _fields("ticket", "symbol", "type", "volume", "open_time", "close_time", "open_price",
                               "close_price", "profit", "commission", "swap", "comment",
                               strings=("symbol", "type", "open_time", "close_time", "comment")),
        "Error": _fields("error", strings=("error",)),
    }
