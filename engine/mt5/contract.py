"""The MT5 REST contract in code: routes, MT5 constants, payload shapes and request validation.

Client, simulator and bridge import these names so the three sides cannot drift apart; the prose
version is docs/mt5_rest_api.md. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from engine import timeframes
from engine.errors import ConfigError, InvalidRequestError
from engine.mt5.spec import ROUTES

# The trade-server vocabulary (return codes, order states, the comment limit) is the execution layer's
# too; it is defined there and re-exported so this module stays the whole contract in code.
from engine.trading.broker import (  # noqa: F401
    MAX_COMMENT,
    ORDER_STATE_CANCELED,
    ORDER_STATE_FILLED,
    ORDER_STATE_PLACED,
    ORDER_TIME_GTC,
    RATE_LIMIT_RETCODES,
    RECONCILE_RETCODES,
    REPRICE_RETCODES,
    RETCODE_CONNECTION,
    RETCODE_DONE,
    RETCODE_DONE_PARTIAL,
    RETCODE_ERROR,
    RETCODE_INVALID,
    RETCODE_INVALID_FILL,
    RETCODE_INVALID_ORDER,
    RETCODE_INVALID_PRICE,
    RETCODE_INVALID_STOPS,
    RETCODE_INVALID_VOLUME,
    RETCODE_MARKET_CLOSED,
    RETCODE_NAMES,
    RETCODE_NO_MONEY,
    RETCODE_PLACED,
    RETCODE_POSITION_CLOSED,
    RETCODE_PRICE_CHANGED,
    RETCODE_PRICE_OFF,
    RETCODE_REJECT,
    RETCODE_REQUOTE,
    RETCODE_TIMEOUT,
    RETCODE_TOO_MANY_REQUESTS,
    RETCODE_TRADE_DISABLED,
    SUCCESS_RETCODES,
)

# -- routes -----------------------------------------------------------------------------------------
# The full table (parameters, bodies, answers, which routes the quant-server bridge shares) is
# engine.mt5.spec; these are its paths.
GET_ROUTES = tuple(r.path for r in ROUTES if r.method == "GET")
POST_ROUTES = tuple(r.path for r in ROUTES if r.method == "POST")
IDEMPOTENCY_HEADER = "Idempotency-Key"

# MT5 caps bars per copy call by the terminal's "Max bars in chart"; bridges cap them too.
DEFAULT_MAX_BARS = 10_000
DEFAULT_MAX_TICKS = 100_000

# -- MT5 constants (values of the MetaTrader5 package) ----------------------------------------------
TRADE_ACTION_DEAL = 1
TRADE_ACTION_PENDING = 5
TRADE_ACTION_SLTP = 6
TRADE_ACTION_REMOVE = 8
ACTIONS = {"DEAL": TRADE_ACTION_DEAL, "PENDING": TRADE_ACTION_PENDING, "SLTP": TRADE_ACTION_SLTP,
           "REMOVE": TRADE_ACTION_REMOVE}

ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_TYPE_BUY_LIMIT = 2
ORDER_TYPE_SELL_LIMIT = 3
ORDER_TYPES = {"BUY": ORDER_TYPE_BUY, "SELL": ORDER_TYPE_SELL, "BUY_LIMIT": ORDER_TYPE_BUY_LIMIT,
               "SELL_LIMIT": ORDER_TYPE_SELL_LIMIT}

ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
FILLINGS = {"FOK": ORDER_FILLING_FOK, "IOC": ORDER_FILLING_IOC, "RETURN": ORDER_FILLING_RETURN}

POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1

# -- payload shapes (the keys every response record carries) ---------------------------------------
BAR_FIELDS = ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")
TICK_FIELDS = ("time", "time_msc", "bid", "ask", "last", "volume")
ACCOUNT_FIELDS = ("login", "currency", "leverage", "balance", "equity", "profit", "margin", "margin_free",
                  "margin_level", "server", "trade_mode")
SYMBOL_FIELDS = ("name", "digits", "point", "spread", "trade_contract_size", "trade_tick_size", "trade_tick_value",
                 "volume_min", "volume_max", "volume_step", "trade_mode", "currency_base", "currency_profit", "bid",
                 "ask")
# symbol_info_tick answers carry the package's whole Tick; range ticks the fields above.
SYMBOL_TICK_FIELDS = (*TICK_FIELDS, "flags", "volume_real")
# The package's TradePosition fields (the quant-server bridge's own client reads time_update).
POSITION_FIELDS = ("ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic", "identifier",
                   "reason", "volume", "price_open", "sl", "tp", "price_current", "swap", "profit", "symbol",
                   "comment", "external_id")
ORDER_FIELDS = ("ticket", "time_setup", "time_done", "type", "state", "magic", "position_id", "volume_initial",
                "volume_current", "price_open", "sl", "tp", "price_current", "symbol", "comment")
DEAL_FIELDS = ("ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id", "volume",
               "price", "commission", "swap", "profit", "symbol", "comment")
RESULT_FIELDS = ("retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "request_id",
                 "retcode_external")


def timeframe(name: Any) -> timeframes.Timeframe:
    """MT5 timeframe by name, or InvalidRequestError naming the allowed ones."""
    try:
        return timeframes.parse(str(name))
    except ConfigError as exc:
        raise InvalidRequestError(f"timeframe: {exc.problem}") from None


# -- times ------------------------------------------------------------------------------------------
def parse_server_time(value: Any, key: str) -> datetime:
    """A naive ISO time in broker server time; a zone suffix is refused because the contract's range
    parameters are always server time (see docs/mt5_rest_api.md, "Times")."""
    if value is None or str(value).strip() == "":
        raise InvalidRequestError(f"missing query parameter {key!r}; send a naive ISO time such as "
                                  "2024-03-01T00:00:00 (broker server time)")
    text = str(value).strip()
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"{key}={text!r} is not an ISO time; use YYYY-MM-DDTHH:MM:SS "
                                  "(broker server time, no zone)") from None
    if ts.tzinfo is not None:
        raise InvalidRequestError(f"{key}={text!r} carries a zone; range times are naive broker server time. "
                                  "Convert from UTC with the server offset and drop the suffix")
    return ts


def parse_history_time(value: Any, key: str) -> datetime:
    """``from_date``/``to_date`` of the history routes, as the quant-server bridge reads them: an ISO time
    whose wall value is broker server time, naive or with ``Z`` (that bridge hands the package
    ``timestamp()`` of it). Any other offset is refused: it would shift the range by that offset there."""
    text = str(value).strip()
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"Invalid parameter format: {key}={text!r} is not an ISO time") from None
    if ts.tzinfo is not None:
        if ts.utcoffset() != timedelta(0):
            raise InvalidRequestError(f"{key}={text!r} carries a non-zero offset; history times are broker "
                                      "server time, written naive or with Z")
        ts = ts.replace(tzinfo=None)
    return ts


def check_range(start: datetime, end: datetime) -> None:
    if start > end:
        raise InvalidRequestError(f"start {start.isoformat()} is after end {end.isoformat()}; swap them")


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def epoch_s(ts: datetime) -> int:
    """Seconds since 1970 of a naive server-time datetime (MT5 stamps server time as if it were UTC)."""
    return int((ts - _EPOCH).total_seconds())


def from_epoch_s(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


_EPOCH = datetime(1970, 1, 1)


# -- requests ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderRequest:
    """A validated ``order_send`` request in MT5's field names."""

    action: int
    symbol: str
    volume: float
    type: int
    price: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    deviation: int = 20
    magic: int = 0
    comment: str = ""
    type_filling: int = ORDER_FILLING_IOC
    type_time: int = ORDER_TIME_GTC
    position: int = 0
    order: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _enum(value: Any, names: Mapping[str, int], key: str) -> int:
    if isinstance(value, bool):
        raise InvalidRequestError(f"{key} must be one of {sorted(names)} or its MT5 number, got {value!r}")
    if isinstance(value, int) and value in names.values():
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        for prefix in ("TRADE_ACTION_", "ORDER_TYPE_", "ORDER_FILLING_"):
            text = text.removeprefix(prefix)
        if text in names:
            return names[text]
        if text.isdigit() and int(text) in names.values():
            return int(text)
    raise InvalidRequestError(f"{key}={value!r} is not supported; use one of {sorted(names)} "
                              f"(MT5 numbers {sorted(names.values())})")


def _number(body: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if value is None:
        raise InvalidRequestError(f"order needs {key!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequestError(f"{key} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise InvalidRequestError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise InvalidRequestError(f"{key} must be a finite number >= 0, got {value!r}")
    return out


def parse_order(body: Any) -> OrderRequest:
    """Validate a POST /order body (MT5 names; enums as numbers or names such as "BUY")."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("order body must be a JSON object with MT5 order_send fields")
    known = set(OrderRequest.__dataclass_fields__) | {"type_filling", "type_time", "expiration", "stoplimit"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequestError(f"unknown order field(s) {unknown}; allowed: {sorted(known)}")
    action = _enum(body.get("action", TRADE_ACTION_DEAL), ACTIONS, "action")
    # A cancel names an order and a stop change a position: neither needs a symbol, type or volume.
    modifies = action in (TRADE_ACTION_REMOVE, TRADE_ACTION_SLTP)
    symbol = body.get("symbol")
    if not modifies and (not isinstance(symbol, str) or not symbol.strip()):
        raise InvalidRequestError("order needs 'symbol' (e.g. BTCUSD)")
    comment = body.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise InvalidRequestError(f"comment must be a string of at most {MAX_COMMENT} characters "
                                  "(MT5 truncates longer ones, which breaks reconciliation)")
    magic = body.get("magic", 0)
    if isinstance(magic, bool) or not isinstance(magic, int) or magic < 0:
        raise InvalidRequestError(f"magic must be a non-negative integer, got {magic!r}")
    if not modifies and body.get("type") is None:
        raise InvalidRequestError("Missing required fields: an order needs 'symbol', 'volume' and 'type'")
    order_type = _enum(body["type"], ORDER_TYPES, "type") if not modifies else ORDER_TYPE_BUY
    if action == TRADE_ACTION_DEAL and order_type not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
        raise InvalidRequestError("Invalid order type: a market order (action DEAL) takes type BUY (0) or "
                                  "SELL (1); use action PENDING for BUY_LIMIT/SELL_LIMIT")
    if action == TRADE_ACTION_PENDING and order_type not in (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT):
        raise InvalidRequestError("a pending order takes type BUY_LIMIT or SELL_LIMIT")
    price = _number(body, "price", 0.0)
    if action == TRADE_ACTION_PENDING and price <= 0:
        raise InvalidRequestError("a limit order needs a positive 'price'")
    deviation = body.get("deviation", 20)
    if isinstance(deviation, bool) or not isinstance(deviation, int) or deviation < 0:
        raise InvalidRequestError(f"deviation must be a non-negative integer (points), got {deviation!r}")
    ints = {}
    for key in ("position", "order"):
        value = body.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequestError(f"{key} must be a non-negative integer ticket, got {value!r}")
        ints[key] = value
    if action == TRADE_ACTION_REMOVE and ints["order"] <= 0:
        raise InvalidRequestError("action REMOVE needs the pending order's ticket in 'order'")
    if action == TRADE_ACTION_SLTP and ints["position"] <= 0:
        raise InvalidRequestError("action SLTP needs the position's ticket in 'position'")
    return OrderRequest(
        action=action, symbol=str(symbol or "").strip(),
        volume=_number(body, "volume", 0.0 if modifies else None),
        type=order_type, price=price, sl=_number(body, "sl", 0.0), tp=_number(body, "tp", 0.0),
        deviation=deviation, magic=magic, comment=comment,
        type_filling=_enum(body.get("type_filling", ORDER_FILLING_IOC), FILLINGS, "type_filling"),
        type_time=ORDER_TIME_GTC, position=ints["position"], order=ints["order"],
    )


def result(retcode: int, *, comment: str = "", deal: int = 0, order: int = 0, volume: float = 0.0,
           price: float = 0.0, bid: float = 0.0, ask: float = 0.0, request_id: int = 0) -> dict[str, Any]:
    """An ``order_send`` result in MT5's shape."""
    return {"retcode": int(retcode), "deal": int(deal), "order": int(order), "volume": float(volume),
            "price": float(price), "bid": float(bid), "ask": float(ask),
            "comment": comment or RETCODE_NAMES.get(retcode, ""), "request_id": int(request_id),
            "retcode_external": 0}
