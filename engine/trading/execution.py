"""Orders that execute once, whatever happens to the connection (docs/mt5_rest_api.md, "Never twice").

Every order carries an ``Idempotency-Key`` and a comment derived from it. When an answer is lost
(timeout, dropped connection, 5xx), unreadable (a proxy's HTML page) or says the trade server timed out
(10012/10031), the order may have executed: it is looked for by magic+comment before anything is sent
again, and a resend reuses the key so a server that did run it answers with the first result. After
``broker.order_retries`` resends the outcome is declared unknown (OrderStateUnknownError), never guessed.
A trade server that throttles (10024) gets the same order again under the same key after a backoff, looked
for first like a lost one; a requote (10004/10020/10021) is an outcome that send_order re-prices.

``place_order``/``close_position``/``cancel_order`` raise typed errors (engine.errors); ``send_order`` is the
seed's contract over them (a result dict, re-pricing after requotes, input checks against the symbol, and
the RiskManager's gate when one is given or bound to the client).
Pure over the Broker protocol (engine.trading.broker): no HTTP here, and no import of the MT5 adapter.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import (
    BadResponseError,
    InvalidRequestError,
    OperationalError,
    OrderRejectedError,
    OrderStateUnknownError,
    RejectedError,
    RequoteError,
    RetryableError,
    RiskRefusedError,
)
from engine.trading.broker import (
    MAX_COMMENT,
    ORDER_STATE_CANCELED,
    ORDER_STATE_FILLED,
    ORDER_TIME_GTC,
    RATE_LIMIT_RETCODES,
    RECONCILE_RETCODES,
    REPRICE_RETCODES,
    RETCODE_DONE,
    RETCODE_DONE_PARTIAL,
    RETCODE_INVALID_ORDER,
    RETCODE_NAMES,
    SUCCESS_RETCODES,
    Broker,
    QuotingBroker,
    RiskCheck,
    ask_risk,
)

log = logging.getLogger("engine.trading.execution")


@dataclass(frozen=True)
class OrderResult:
    """An ``order_send`` outcome. ``reconciled`` is True when it was found by magic+comment after a
    lost answer rather than read from the answer itself. ``payload`` is the venue's result as it came
    (every field, also those not named here, e.g. ``retcode_external``); the fields above are read from it."""

    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    idempotency_key: str
    reconciled: bool = False
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.retcode in SUCCESS_RETCODES

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], key: str, reconciled: bool = False) -> OrderResult:
        try:
            return cls(retcode=int(payload["retcode"]), deal=int(payload.get("deal") or 0),
                       order=int(payload.get("order") or 0), volume=float(payload.get("volume") or 0.0),
                       price=float(payload.get("price") or 0.0), bid=float(payload.get("bid") or 0.0),
                       ask=float(payload.get("ask") or 0.0), comment=str(payload.get("comment") or ""),
                       request_id=int(payload.get("request_id") or 0), idempotency_key=key, reconciled=reconciled,
                       payload=dict(payload))
        except (KeyError, TypeError, ValueError):
            raise BadResponseError(f"order result lacks a numeric retcode: {sorted(payload)!r}") from None


def order_comment(key: str) -> str:
    """The default order comment for an Idempotency-Key. A digest, not a prefix: deterministic keys
    derived from signals share long prefixes, and two orders with one comment would reconcile as one."""
    return "eng-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def place_order(broker: Broker, symbol: str, side: str, volume: float, *, kind: str = "market",
                price: float = 0.0, sl: float = 0.0, tp: float = 0.0, deviation: int = 20, magic: int = 0,
                comment: str | None = None, idempotency_key: str | None = None,
                type_filling: str = "IOC") -> OrderResult:
    """Send a market or limit order once, whatever happens to the connection.

    ``comment`` defaults to ``eng-<24 hex digits of sha256(key)>`` so that it identifies the order
    for reconciliation; pass a deterministic ``idempotency_key`` (e.g. from the signal) to stay
    safe across restarts. A custom ``comment`` must be unique per order (with the same magic):
    reconciliation takes any deal or pending order carrying it as this order. Refusals raise
    OrderRejectedError, price moves RequoteError, an unknowable outcome OrderStateUnknownError.
    """
    side_u, kind_l = str(side).upper(), str(kind).lower()
    if side_u not in ("BUY", "SELL") or kind_l not in ("market", "limit"):
        raise InvalidRequestError(f"side must be buy/sell and kind market/limit, got {side!r}, {kind!r}")
    if isinstance(volume, bool) or not isinstance(volume, int | float) or not math.isfinite(volume) or volume <= 0:
        raise InvalidRequestError(f"volume must be a positive number of lots, got {volume!r}")
    key = _key(idempotency_key)
    comment = order_comment(key) if comment is None else comment
    if not isinstance(comment, str) or not comment or len(comment) > MAX_COMMENT:
        raise InvalidRequestError(f"comment must be 1..{MAX_COMMENT} characters: it identifies the order "
                                  "when an answer is lost")
    try:
        magic = int(magic)
        body = {"action": "DEAL" if kind_l == "market" else "PENDING", "symbol": str(symbol),
                "volume": float(volume), "type": side_u if kind_l == "market" else f"{side_u}_LIMIT",
                "price": float(price), "sl": float(sl), "tp": float(tp), "deviation": int(deviation),
                "magic": magic, "comment": comment, "type_filling": type_filling, "type_time": ORDER_TIME_GTC}
    except (TypeError, ValueError):
        raise InvalidRequestError("price, sl, tp must be numbers and deviation, magic integers; got "
                                  f"{price!r}, {sl!r}, {tp!r}, {deviation!r}, {magic!r}") from None

    def look() -> OrderResult | None:
        return _reconciled(broker.find_order(comment, magic=magic), key)

    return _send_once(broker, broker.post_order, "/order", body, key, look)


def close_position(broker: Broker, ticket: int, volume: float | None = None, *, deviation: int = 20,
                   magic: int = 0, comment: str | None = None, idempotency_key: str | None = None) -> OrderResult:
    """Close (all or ``volume`` of) a position by ticket; same once-only guarantees as place_order."""
    key = _key(idempotency_key)
    comment = order_comment(key) if comment is None else comment
    try:
        body: dict[str, Any] = {"ticket": int(ticket), "deviation": int(deviation), "magic": int(magic),
                                "comment": comment}
        if volume is not None:
            body["volume"] = float(volume)
    except (TypeError, ValueError):
        raise InvalidRequestError("ticket, deviation and magic must be integers and volume a number or None; "
                                  f"got {ticket!r}, {deviation!r}, {magic!r}, {volume!r}") from None

    def look() -> OrderResult | None:
        return _reconciled(broker.find_order(comment, position=int(ticket)), key)

    return _send_once(broker, broker.post_close, "/close_position", body, key, look)


def cancel_order(broker: Broker, order_ticket: int, *, idempotency_key: str | None = None) -> OrderResult:
    """Remove a pending order. A lost answer counts as done only if the history says cancelled; an order
    that filled meanwhile raises OrderRejectedError (a position is open)."""
    key = _key(idempotency_key)
    try:
        body = {"action": "REMOVE", "order": int(order_ticket)}
    except (TypeError, ValueError):
        raise InvalidRequestError(f"order_ticket must be an integer, got {order_ticket!r}") from None

    def look() -> OrderResult | None:
        # Not pending any more is not "cancelled": it may have filled meanwhile.
        state = broker.order_state(int(order_ticket))
        if state == ORDER_STATE_CANCELED:
            done = {"retcode": RETCODE_DONE, "order": int(order_ticket), "comment": RETCODE_NAMES[RETCODE_DONE]}
            return OrderResult.from_payload(done, key, reconciled=True)
        if state == ORDER_STATE_FILLED:
            raise OrderRejectedError(f"POST /order: cannot cancel order {order_ticket}: it filled before the "
                                     "cancel reached the terminal; a position is open", retcode=RETCODE_INVALID_ORDER)
        return None  # still pending or unknown here: resend with the same key, the server decides

    return _send_once(broker, broker.post_order, "/order", body, key, look)


def _send_once(broker: Broker, post: Callable[[Mapping[str, Any], str], dict[str, Any]], path: str,
               body: dict[str, Any], key: str, look: Callable[[], OrderResult | None]) -> OrderResult:
    what = f"POST {path}"
    last: Exception | None = None
    uncertain = False  # an attempt's answer was lost, unreadable or undecided: that attempt may have run
    throttled: OrderRejectedError | None = None  # the last 10024: that attempt certainly did not run
    for attempt in range(broker.order_retries + 1):
        if attempt:
            # Never resend before looking: the lost attempt may have executed.
            try:
                found = look()
            except RetryableError as exc:
                last = exc
                broker.backoff(attempt - 1)
                continue
            except (BadResponseError, OperationalError, InvalidRequestError) as exc:
                # Whatever stops the look (garbled history, auth, a refused read): the earlier attempt may
                # have executed, so the caller must not take this as "nothing placed" and retry.
                if not uncertain and throttled is not None:
                    raise _still_throttled(what, attempt, throttled) from None
                raise OrderStateUnknownError(
                    f"{what}: the order may have executed ({type(last).__name__}) and the terminal's "
                    f"history cannot be read ({exc}); check it for comment {body.get('comment')!r} before "
                    f"trading on (Idempotency-Key {key})") from None
            if found is not None:
                log.warning("%s: reconciled key %s after %s", what, key, type(last).__name__)
                return found
            if uncertain and not getattr(broker, "idempotent_orders", True):
                # No Idempotency-Key on that server: an order that filled and was already closed (or is still
                # executing) is invisible to the look, and a resend would place it twice.
                raise OrderStateUnknownError(
                    f"{what}: the answer was lost ({type(last).__name__}), the order is not among open positions "
                    f"and this server keeps no idempotency keys, so it is not resent; check the terminal for "
                    f"comment {body.get('comment')!r} before trading on")
            broker.backoff(attempt - 1, getattr(last, "retry_after", None))
        try:
            payload = post(body, key)
            result = OrderResult.from_payload(payload, key)
        except RiskRefusedError as exc:
            if uncertain:  # refused now, but an earlier attempt may still surface: not "nothing placed"
                raise OrderStateUnknownError(
                    f"{what}: an earlier attempt's answer was lost ({type(last).__name__}) and the order is "
                    f"not in the history, and the resend was refused ({exc}); check the terminal for comment "
                    f"{body.get('comment')!r} before trading on (Idempotency-Key {key})") from None
            raise
        except (RetryableError, BadResponseError) as exc:
            # A garbled answer may follow an executed order just like a lost one: look before resending.
            last, uncertain = exc, True
            continue
        if result.ok:
            return result
        if result.retcode in RECONCILE_RETCODES:
            last, uncertain = OrderStateUnknownError(f"{what}: retcode {result.retcode}"), True
            continue
        name = RETCODE_NAMES.get(result.retcode, "unknown retcode")
        message = f"{what}: refused with retcode {result.retcode} ({name}): {result.comment}"
        if result.retcode in RATE_LIMIT_RETCODES:
            last = throttled = OrderRejectedError(message, retcode=result.retcode, result=dict(payload))
            continue
        if result.retcode in REPRICE_RETCODES:
            raise RequoteError(message + "; re-price and decide again", retcode=result.retcode, result=dict(payload))
        raise OrderRejectedError(message, retcode=result.retcode, result=dict(payload))
    if not uncertain and throttled is not None:
        raise _still_throttled(what, broker.order_retries + 1, throttled)
    raise OrderStateUnknownError(
        f"{what}: outcome unknown after {broker.order_retries + 1} attempt(s) and reconciliation "
        f"(last: {type(last).__name__}: {last}); check the terminal for comment {body.get('comment')!r} "
        f"before trading on (Idempotency-Key {key})")


def _still_throttled(what: str, attempts: int, last: OrderRejectedError) -> OrderRejectedError:
    return OrderRejectedError(f"{what}: the trade server refused {attempts} attempt(s) as too many requests "
                              f"(retcode {last.retcode}), with a backoff before each resend; nothing was placed",
                              retcode=last.retcode, result=last.result)


def _reconciled(payload: Mapping[str, Any] | None, key: str) -> OrderResult | None:
    return None if payload is None else OrderResult.from_payload(payload, key, reconciled=True)


def _key(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidRequestError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
    return idempotency_key


# -- the seed's order_execution.send_order ------------------------------------------------------------------
DEFAULT_MAGIC = 234_000  # MetaQuotes' example magic; give each strategy its own
DEFAULT_DEVIATION = 20  # points a market fill may stray from the quote, over every re-price together
MAX_REPRICES = 3

_UNEXPECTED = "unexpected error while sending the order; nothing is known about its fate, see the log"


def send_order(symbol: str, volume: float, order_type: str, price: float | None = None,
               client: QuotingBroker | None = None, *, sl: float | None = None, tp: float | None = None,
               magic: int = DEFAULT_MAGIC, comment: str | None = None, deviation: int = DEFAULT_DEVIATION,
               idempotency_key: str | None = None, risk: RiskCheck | None = None) -> dict[str, Any]:
    """Send a market order (``price`` None) or a limit order at ``price``; the seed's contract.

    Returns ``{"success": True, "data": <the server's order result, as sent>}`` (a partial fill adds
    ``"warning"``, a result found in the history after a lost answer ``"reconciled": True``) or
    ``{"success": False, "error": "<explicit message>"}`` (plus ``"unknown": True`` when the order may have
    executed all the same: OrderStateUnknownError). Raises ValueError only when ``client`` is None:
    network, server and auth failures are results, and no message carries the API key. Inputs are checked
    against the symbol's limits before anything is sent; then ``risk`` (a RiskManager), when given, must
    allow the order (``can_open_position(symbol, volume, side=...)``), else the result is
    ``{"success": False, "error": "risk: <reason>"}`` and nothing is sent. A client with a RiskManager bound
    (``MT5RestClient.guard_orders``) checks every order itself, with or without ``risk``. A requote is
    re-priced from the latest quote while the price stays within ``deviation`` points of the first one; a
    lost or garbled answer is reconciled (Idempotency-Key, magic+comment) before any resend, so an order is
    never placed twice.
    """
    if client is None:
        raise ValueError("send_order needs a client: pass client=MT5RestClient(...) (from engine.mt5)")
    try:
        return _send(client, symbol, volume, order_type, price, sl=sl, tp=tp, magic=magic, comment=comment,
                     deviation=deviation, key=idempotency_key, risk=risk)
    except RiskRefusedError as exc:
        return _failure(str(exc))  # "risk: <reason>"
    except (RetryableError, OperationalError, RejectedError) as exc:
        # Engine errors name the problem and never carry the key (the client redacts it).
        failure = _failure(f"{type(exc).__name__}: {exc}")
        # "unknown": the order may have executed; a caller must not trade on as if nothing was placed
        return failure | {"unknown": True} if isinstance(exc, OrderStateUnknownError) else failure
    except Exception:
        log.exception("send_order(%s, %r, %r) failed unexpectedly", symbol, volume, order_type)
        return _failure(_UNEXPECTED) | {"unknown": True}


def _send(client: QuotingBroker, symbol: str, volume: Any, order_type: Any, price: Any, *, sl: Any, tp: Any,
          magic: Any, comment: str | None, deviation: Any, key: str | None, risk: RiskCheck | None) -> dict[str, Any]:
    side = str(order_type).strip().lower() if isinstance(order_type, str) else ""
    if side not in ("buy", "sell"):
        return _failure(f"order_type must be 'buy' or 'sell', got {order_type!r}")
    if not _number(volume) or volume <= 0:
        return _failure(f"volume must be a positive number of lots, got {volume!r}")
    if price is not None and (not _number(price) or price <= 0):
        return _failure(f"price must be a positive number for a limit order (None for market), got {price!r}")
    if isinstance(deviation, bool) or not isinstance(deviation, int) or deviation < 0:
        return _failure(f"deviation must be a non-negative integer of points, got {deviation!r}")
    for name, level in (("sl", sl), ("tp", tp)):
        if level is not None and (not _number(level) or level < 0):
            return _failure(f"{name} must be a price >= 0 (or None), got {level!r}")
    info = _contract(client, symbol)
    problem = _volume_problem(float(volume), info)
    if problem:
        return _failure(f"volume {volume} for {symbol}: {problem}")
    point = float(info["point"])
    tick = client.latest_tick(symbol)
    bid, ask = float(tick["bid"]), float(tick["ask"])
    if price is not None:
        if side == "buy" and price >= ask:
            return _failure(f"a buy limit must be below the ask ({ask}), got {price}; use a market order")
        if side == "sell" and price <= bid:
            return _failure(f"a sell limit must be above the bid ({bid}), got {price}; use a market order")
    if risk is not None and getattr(client, "order_guard", None) is not risk:
        ask_risk(risk, symbol, float(volume), side)  # a client guarded by this same gate asks it per POST
    key = _key(key)
    first = ask if side == "buy" else bid
    quote, attempt_key = first, key
    for reprice in range(MAX_REPRICES + 1):
        drift = round(abs(quote - first) / point)
        try:
            result = place_order(client, symbol, side, float(volume), kind="market" if price is None else "limit",
                                 price=quote if price is None else float(price), sl=float(sl or 0.0),
                                 tp=float(tp or 0.0), deviation=deviation - drift, magic=magic, comment=comment,
                                 idempotency_key=attempt_key)
        except RequoteError as exc:
            if price is not None:
                raise
            tick = client.latest_tick(symbol)
            quote = float(tick["ask"] if side == "buy" else tick["bid"])
            if abs(quote - first) / point > deviation:
                return _failure(f"requoted (retcode {exc.retcode}) and the price moved to {quote}, beyond the "
                                f"deviation budget of {deviation} points from {first}; nothing was placed")
            # The requote is an outcome (nothing executed) and the server remembers it under the key:
            # the re-priced order is a new request with a key of its own.
            attempt_key = f"{key}/reprice-{reprice + 1}"
            continue
        return _success(result, float(volume))
    return _failure(f"requoted {MAX_REPRICES + 1} times; nothing was placed (last quote {quote})")


def _contract(client: QuotingBroker, symbol: str) -> dict[str, Any]:
    spec = getattr(client, "symbol_spec", None)  # MT5RestClient's remembered copy (the server re-checks)
    return dict(spec(symbol)) if callable(spec) else client.symbol_info(symbol)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _volume_problem(volume: float, info: Mapping[str, Any]) -> str | None:
    low, high, step = float(info["volume_min"]), float(info["volume_max"]), float(info["volume_step"])
    if not low <= volume <= high:
        return f"must be within {low}..{high} lots"
    steps = volume / step
    if not math.isclose(steps, round(steps), abs_tol=1e-6):
        return f"must be a multiple of the volume step {step}"
    return None


def _success(result: OrderResult, requested: float) -> dict[str, Any]:
    # The venue's result untouched; what the engine knows beside it goes under keys of its own.
    out: dict[str, Any] = {"success": True, "data": dict(result.payload)}
    if result.reconciled:
        out["reconciled"] = True  # data is the deal or order found in the history, not the lost answer
    if result.retcode == RETCODE_DONE_PARTIAL:
        out["warning"] = (f"partially filled: {result.volume} of {requested} lots (retcode {result.retcode}); "
                          "the rest was not placed")
    return out


def _failure(message: str) -> dict[str, Any]:
    return {"success": False, "error": message}
