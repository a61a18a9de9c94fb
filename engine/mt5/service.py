"""The contract's request handling, independent of the HTTP server: auth, routing to a Backend, answer
wrappers and status codes, the Idempotency-Key rule (docs/mt5_rest_api.md).

Where a route is shared with the quant-server Flask bridge (engine.mt5.spec ``shared``), answers take its
shapes: a successful order is ``{"message", "result"}``, a refused one a 400 whose body carries the MT5
result, an empty position list is ``{"positions": []}``. The reads live in engine.mt5.service_reads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.errors import ConfigError, EngineError, InvalidRequestError, RetryableError
from engine.mt5 import contract, jsonio
from engine.mt5.service_reads import Reads
from engine.timeframes import Timeframe

log = logging.getLogger("engine.mt5.server")


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


class Backend(Protocol):
    """What a server needs from a market: every method returns contract-shaped dicts or raises
    InvalidRequestError (404 for unknown things via ``status``) / RetryableError (503)."""

    def health(self) -> dict[str, Any]: ...
    def account_info(self) -> dict[str, Any]: ...
    def symbol_info(self, symbol: str) -> dict[str, Any]: ...
    def symbol_info_tick(self, symbol: str) -> dict[str, Any]: ...
    def rates_from_pos(self, symbol: str, tf: Timeframe, start_pos: int, count: int) -> list[dict[str, Any]]: ...
    def rates_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def ticks_range(self, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def order_send(self, request: contract.OrderRequest) -> dict[str, Any]: ...
    def close_position(self, ticket: int, volume: float | None, deviation: int, magic: int,
                       comment: str) -> dict[str, Any]: ...
    def positions(self, symbol: str | None) -> list[dict[str, Any]]: ...
    def orders(self, symbol: str | None) -> list[dict[str, Any]]: ...
    def history_deals(self, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def history_orders(self, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def last_error(self) -> tuple[int, str]: ...


def answer_of(fn: Callable[[], Any]) -> Answer:
    """Run ``fn``: its value is a 200 (or an Answer as it is); typed errors become JSON errors."""
    try:
        out = fn()
        return out if isinstance(out, Answer) else Answer(200, out, {})
    except InvalidRequestError as exc:
        return Answer(exc.status, {"error": str(exc)}, {})
    except RetryableError as exc:
        return Answer(503, {"error": str(exc)}, {"Retry-After": "1"})
    except EngineError as exc:
        return Answer(500, {"error": f"{type(exc).__name__}: {exc}"}, {})
    except Exception:
        log.exception("internal error while serving a request")
        return Answer(500, {"error": "internal server error; see the server log"}, {})


class _IdempotencyCache:
    """Answers of POSTs by key, so a retried order returns the first answer instead of running again.

    Bounded (oldest keys go first) because a bridge runs for weeks; a key is only needed for the
    minutes a client keeps retrying.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str, Answer]] = OrderedDict()

    def get(self, key: str, digest: str) -> Answer | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] != digest:
            return Answer(422, {"error": "Idempotency-Key was already used for a different request; "
                                          "use a fresh key for every new order"}, {})
        return hit[1]

    def put(self, key: str, digest: str, answer: Answer) -> None:
        self._items[key] = (digest, answer)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


_SUCCESS_MESSAGES = {contract.RETCODE_DONE: "Order executed successfully", contract.RETCODE_PLACED: "Order placed",
                     contract.RETCODE_DONE_PARTIAL: "Order partially filled"}
_NOT_REMEMBERED = contract.RECONCILE_RETCODES | contract.RATE_LIMIT_RETCODES


class ContractService:
    """The contract over ``backend``: one instance per server, called from the server's worker threads."""

    def __init__(self, backend: Backend, *, api_key: str, max_bars: int = contract.DEFAULT_MAX_BARS,
                 max_ticks: int = contract.DEFAULT_MAX_TICKS, idempotency_capacity: int = 10_000) -> None:
        if not api_key:
            raise ConfigError("api_key", "the server needs a non-empty API key; clients send it as a Bearer token")
        self.backend = backend
        self.reads = Reads(backend, max_bars=max_bars, max_ticks=max_ticks)
        self._token = api_key.encode()
        self._post_lock = threading.Lock()
        self._cache = _IdempotencyCache(idempotency_capacity)

    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self._token)

    def get(self, route: str, params: Mapping[str, Any]) -> Answer:
        return answer_of(lambda: self.reads.answer(route, params))

    # -- POST -------------------------------------------------------------------------------------------
    def post(self, route: str, raw: bytes, key: str | None) -> Answer:
        try:
            body = jsonio.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return Answer(400, {"error": "malformed JSON body; send a JSON object"}, {})
        handler = self._POSTS.get(route)
        if handler is None:
            return Answer(404, {"error": f"no route POST {route}; see docs/mt5_rest_api.md"}, {})
        digest = hashlib.sha256(route.encode() + b"\0" + json.dumps(body, sort_keys=True).encode()).hexdigest()
        # One POST at a time: the key check, the execution and the cache write must be atomic, or two
        # racing retries of one order could both execute.
        with self._post_lock:
            if key:
                cached = self._cache.get(key, digest)
                if cached is not None:
                    return cached
            answer = answer_of(lambda: handler(self, body))
            # An MT5 "timeout"/"no connection" retcode is not an outcome, and "too many requests" asks for
            # the same order later: the retry must reach MT5 again, so neither is remembered.
            result = answer.body.get("result") if isinstance(answer.body, dict) else None
            undecided = isinstance(result, dict) and result.get("retcode") in _NOT_REMEMBERED
            if key and answer.status < 500 and not undecided:
                self._cache.put(key, digest, answer)
            return answer

    def _result_answer(self, result: dict[str, Any], failed: Callable[[dict[str, Any]], str],
                       messages: Mapping[int, str] = _SUCCESS_MESSAGES) -> Answer:
        """200 ``{"message", "result"}`` on success; a refusal is a 400 carrying the result, as that bridge
        answers (a partial fill is a success: a 400 would say nothing executed while a position is open)."""
        retcode = int(result.get("retcode", 0))
        if retcode in contract.SUCCESS_RETCODES:
            return Answer(200, {"message": messages.get(retcode, "done"), "result": result}, {})
        body = {"error": failed(result), "mt5_error": self.backend.last_error()[1], "result": result}
        return Answer(400, body, {})

    def _order(self, body: Any) -> Answer:
        request = contract.parse_order(body)
        try:
            result = self.backend.order_send(request)
        except InvalidRequestError as exc:
            if exc.status == 404:  # that bridge answers an unknown symbol on /order with 400
                raise InvalidRequestError(str(exc)) from None
            raise
        messages = {**_SUCCESS_MESSAGES, contract.RETCODE_DONE: "Order removed"} \
            if request.action == contract.TRADE_ACTION_REMOVE else _SUCCESS_MESSAGES
        return self._result_answer(result, lambda r: f"Order failed: {r.get('comment', '')}", messages)

    def _open_position(self, ticket: int) -> dict[str, Any] | None:
        return next((p for p in self.backend.positions(None) if p["ticket"] == ticket), None)

    def _close(self, body: Any) -> Answer:
        if not isinstance(body, Mapping) or not isinstance(body.get("position"), Mapping):
            raise InvalidRequestError("Position data is required: send {\"position\": {\"ticket\", \"type\", "
                                      "\"symbol\", \"volume\"}}")
        spec = body["position"]
        ticket = spec.get("ticket")
        if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket <= 0:
            raise InvalidRequestError(f"position.ticket must be a positive integer, got {ticket!r}")
        volume = spec.get("volume")
        if volume is not None and (isinstance(volume, bool) or not isinstance(volume, int | float) or volume <= 0):
            raise InvalidRequestError(f"position.volume must be a positive number or absent, got {volume!r}")
        comment = body.get("comment") or ""
        if not isinstance(comment, str) or len(comment) > contract.MAX_COMMENT:
            raise InvalidRequestError(f"comment must be a string of at most {contract.MAX_COMMENT} characters")
        deviation, magic = body.get("deviation", 20), body.get("magic", 0)
        if not isinstance(deviation, int) or not isinstance(magic, int) or deviation < 0 or magic < 0:
            raise InvalidRequestError("deviation and magic must be non-negative integers")
        held = self._open_position(ticket)
        if held is not None:
            # That bridge trusts the client's type and symbol; a wrong one would trade the wrong way.
            for name in ("type", "symbol"):
                if spec.get(name) is not None and spec[name] != held[name]:
                    raise InvalidRequestError(f"position {ticket} has {name} {held[name]!r}, not {spec[name]!r}")
        result = self.backend.close_position(ticket, None if volume is None else float(volume), deviation,
                                             magic, comment)
        messages = {r: "Position closed successfully" for r in contract.SUCCESS_RETCODES}
        return self._result_answer(result, lambda r: "Failed to close position", messages)

    def _close_all(self, body: Any) -> Answer:
        body = body if isinstance(body, Mapping) else {}
        side = body.get("order_type", "all")
        sides = {"BUY": contract.POSITION_TYPE_BUY, "SELL": contract.POSITION_TYPE_SELL}
        if side != "all" and side not in sides:
            return Answer(200, {"message": "No positions were closed"}, {})
        magic = body.get("magic")
        results = []
        for pos in self.backend.positions(None):
            if (magic is not None and pos["magic"] != magic) or (side != "all" and pos["type"] != sides[side]):
                continue
            result = self.backend.close_position(int(pos["ticket"]), None, 20, 0, "")
            if int(result.get("retcode", 0)) in contract.SUCCESS_RETCODES:
                results.append(result)
        if not results:
            return Answer(200, {"message": "No positions were closed"}, {})
        return Answer(200, {"message": f"Closed {len(results)} positions", "results": results}, {})

    def _modify(self, body: Any) -> Answer:
        if not isinstance(body, Mapping) or "position" not in body:
            raise InvalidRequestError("Position data is required: send {\"position\": ticket, \"sl\", \"tp\"}")
        ticket = body["position"]
        if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket <= 0:
            raise InvalidRequestError(f"position must be a positive integer ticket, got {ticket!r}")
        held = self._open_position(ticket) or {}
        # An absent level keeps the current one (that bridge would send None to the terminal).
        levels = {k: body[k] if body.get(k) is not None else held.get(k, 0.0) for k in ("sl", "tp")}
        request = contract.parse_order({"action": "SLTP", "position": ticket, **levels})
        result = self.backend.order_send(request)
        messages = {r: "SL/TP modified successfully" for r in contract.SUCCESS_RETCODES}
        return self._result_answer(result, lambda r: f"Failed to modify SL/TP: {r.get('comment', '')}", messages)

    _POSTS: Mapping[str, Callable[[ContractService, Any], Answer]] = {
        "/order": _order, "/close_position": _close, "/close_all_positions": _close_all, "/modify_sl_tp": _modify}
