"""The venue as order execution sees it: the Broker protocol and MT5's trade-server vocabulary.

The execution layer (engine.trading.execution) decides when to send, look for and resend an order; a
Broker only moves requests and answers. ``engine.mt5.MT5RestClient`` satisfies the protocol structurally,
and this module imports nothing of it: the core never imports its venue adapters. The return codes and
order states are MT5's own numbers (MqlTradeResult.retcode, ENUM_ORDER_STATE): every MT5 venue speaks
them, so they belong to the trading vocabulary rather than to one adapter.

``check_order`` is the risk gate on the order path: a venue adapter with a RiskManager bound to it
(``MT5RestClient.guard_orders``) runs it on every request before it is sent, so no caller of that client
can place an order the RiskManager refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

from engine.errors import RiskRefusedError

log = logging.getLogger("engine.trading.broker")

# -- trade server return codes (MqlTradeResult.retcode) ---------------------------------------------
RETCODE_REQUOTE = 10004
RETCODE_REJECT = 10006
RETCODE_PLACED = 10008
RETCODE_DONE = 10009
RETCODE_DONE_PARTIAL = 10010
RETCODE_ERROR = 10011
RETCODE_TIMEOUT = 10012
RETCODE_INVALID = 10013
RETCODE_INVALID_VOLUME = 10014
RETCODE_INVALID_PRICE = 10015
RETCODE_INVALID_STOPS = 10016
RETCODE_TRADE_DISABLED = 10017
RETCODE_MARKET_CLOSED = 10018
RETCODE_NO_MONEY = 10019
RETCODE_PRICE_CHANGED = 10020
RETCODE_PRICE_OFF = 10021
RETCODE_TOO_MANY_REQUESTS = 10024
RETCODE_INVALID_FILL = 10030
RETCODE_CONNECTION = 10031
RETCODE_INVALID_ORDER = 10035
RETCODE_POSITION_CLOSED = 10036

SUCCESS_RETCODES = frozenset({RETCODE_PLACED, RETCODE_DONE, RETCODE_DONE_PARTIAL})
# The price moved between the quote and the order: nothing executed, and the same order at the same price
# would be refused again, so it is re-priced (a new decision, a new key).
REPRICE_RETCODES = frozenset({RETCODE_REQUOTE, RETCODE_PRICE_CHANGED, RETCODE_PRICE_OFF})
# The order may have reached the trade server: look for it (magic+comment) before any retry. Servers do
# not remember these answers under the Idempotency-Key either: they are not outcomes.
RECONCILE_RETCODES = frozenset({RETCODE_TIMEOUT, RETCODE_CONNECTION})
# The trade server is throttling: nothing executed, and the price is not the problem, so the same order
# waits (backoff) and is resent under the same key. Re-pricing at once would only add to the load.
# Servers do not remember this answer under the key either: the resend must reach the trade server.
RATE_LIMIT_RETCODES = frozenset({RETCODE_TOO_MANY_REQUESTS})

RETCODE_NAMES = {
    RETCODE_REQUOTE: "requote", RETCODE_REJECT: "rejected", RETCODE_PLACED: "placed", RETCODE_DONE: "done",
    RETCODE_DONE_PARTIAL: "done partially", RETCODE_ERROR: "error", RETCODE_TIMEOUT: "timeout",
    RETCODE_INVALID: "invalid request", RETCODE_INVALID_VOLUME: "invalid volume",
    RETCODE_INVALID_PRICE: "invalid price", RETCODE_INVALID_STOPS: "invalid stops",
    RETCODE_TRADE_DISABLED: "trade disabled", RETCODE_MARKET_CLOSED: "market closed",
    RETCODE_NO_MONEY: "no money", RETCODE_PRICE_CHANGED: "price changed", RETCODE_PRICE_OFF: "no quotes",
    RETCODE_TOO_MANY_REQUESTS: "too many requests", RETCODE_INVALID_FILL: "invalid filling",
    RETCODE_CONNECTION: "no connection to trade server", RETCODE_INVALID_ORDER: "invalid order",
    RETCODE_POSITION_CLOSED: "position already closed",
}

# -- order states (ENUM_ORDER_STATE) ------------------------------------------------------------------
ORDER_STATE_PLACED = 1
ORDER_STATE_CANCELED = 2
ORDER_STATE_FILLED = 4

ORDER_TIME_GTC = 0  # every order the engine sends is good till cancelled

MAX_COMMENT = 31  # MT5 truncates order comments to 31 characters; reconciliation relies on them.


class Broker(Protocol):
    """What the exactly-once order logic needs from a venue.

    Posts are raw: one HTTP request, no retry, no reconciliation. They return the venue's
    ``order_send`` result (a dict with ``retcode``) and raise engine.errors types: RetryableError when
    the answer was lost (timeout, dropped connection, 5xx), BadResponseError when it is unreadable,
    InvalidRequestError when the request was refused before reaching the trade server.
    """

    order_retries: int  # attempts after the first before the outcome is declared unknown

    def post_order(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def post_close(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def find_order(self, comment: str, *, magic: int | None = None,
                   position: int | None = None) -> dict[str, Any] | None:
        """The deal (retcode DONE) or pending order (retcode PLACED) carrying ``comment``, and ``magic``
        or closing ``position`` when given, as an ``order_send`` result; None when there is none."""
        ...

    def order_state(self, ticket: int) -> int | None:
        """ORDER_STATE_PLACED while ``ticket`` is pending, else its last state in the history; None when
        the venue does not know it."""
        ...

    def backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Wait before retry ``attempt`` (0-based): the venue's Retry-After when given, else backoff."""
        ...


class QuotingBroker(Broker, Protocol):
    """A Broker that also shows the symbol's trading limits and its latest quote (for send_order's
    input checks and for re-pricing after a requote)."""

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        """At least ``volume_min``, ``volume_max``, ``volume_step``, ``point`` and ``digits``."""
        ...

    def latest_tick(self, symbol: str) -> dict[str, Any]:
        """At least ``bid`` and ``ask``."""
        ...


# -- the risk gate on the order path -------------------------------------------------------------------------
class RiskCheck(Protocol):
    """The RiskManager's gate (engine.trading.risk.RiskManager.can_open_position)."""

    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> Mapping[str, Any]: ...


# MT5 names and numbers (TRADE_ACTION_*, ORDER_TYPE_*): the execution layer sends names, a raw body may carry
# the package's numbers. Only DEAL and PENDING can add exposure; SLTP, MODIFY, REMOVE and CLOSE_BY cannot.
_OPENING_ACTIONS = {"DEAL": 1, "PENDING": 5}
_SIDES = {"BUY": ("buy", 0), "SELL": ("sell", 1), "BUY_LIMIT": ("buy", 2), "SELL_LIMIT": ("sell", 3),
          "BUY_STOP": ("buy", 4), "SELL_STOP": ("sell", 5), "BUY_STOP_LIMIT": ("buy", 6),
          "SELL_STOP_LIMIT": ("sell", 7)}


def _enum(value: Any, prefix: str) -> str | int:
    if isinstance(value, str):
        return value.strip().upper().removeprefix(prefix)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is neither an MT5 name nor a number")


def order_exposure(body: Mapping[str, Any]) -> tuple[str, float, str] | None:
    """``(symbol, volume, "buy" | "sell")`` of an ``order_send`` request that may add exposure; None for one
    that cannot (a deal closing a given ``position``, a stop change, a cancel). ValueError when unreadable."""
    action = _enum(body.get("action", "DEAL"), "TRADE_ACTION_")
    if action not in _OPENING_ACTIONS and action not in _OPENING_ACTIONS.values():
        return None
    position = body.get("position")
    if isinstance(position, int) and not isinstance(position, bool) and position > 0:
        # an opposite deal against an open position (a close): the terminal refuses it unless it reduces
        # that position; anything else carrying "position" (a string, 0, True) gets the risk check
        return None
    kind = _enum(body.get("type"), "ORDER_TYPE_")
    side = next((name for key, (name, number) in _SIDES.items() if kind in (key, number)), None)
    if side is None:
        raise ValueError(f"unknown order type {body.get('type')!r}")
    volume = body.get("volume")
    if isinstance(volume, bool) or not isinstance(volume, int | float) or not math.isfinite(volume) or volume <= 0:
        raise ValueError(f"volume {volume!r} is not a positive number of lots")
    return str(body.get("symbol")), float(volume), side


def ask_risk(risk: RiskCheck, symbol: str, volume: float, side: str) -> None:
    """``risk.can_open_position(symbol, volume, side=side)``; RiskRefusedError unless it answers
    ``allowed: True``. Fails closed: a gate that raises or answers something else refuses."""
    try:
        answer = risk.can_open_position(symbol, volume, side=side)
    except Exception:
        log.exception("the risk check of %s %s lots of %s raised; the order is refused", side, volume, symbol)
        raise RiskRefusedError("the risk check failed (see the log); the order was not sent") from None
    if isinstance(answer, Mapping) and answer.get("allowed") is True:
        return
    reason = answer.get("reason") if isinstance(answer, Mapping) else None
    raise RiskRefusedError(str(reason) if reason else f"no decision from the risk check ({answer!r})")


def check_order(risk: RiskCheck, body: Mapping[str, Any]) -> None:
    """Gate one ``order_send`` request (before it is sent) with ``risk``; RiskRefusedError when refused.
    Requests that cannot add exposure pass unasked: a HALTED account must still be able to close."""
    try:
        order = order_exposure(body)
    except ValueError as exc:
        raise RiskRefusedError(f"cannot tell what the order would add ({exc}); it was not sent") from None
    if order is not None:
        ask_risk(risk, *order)
