"""The HTTP side of the contract, shared by the simulator and the bridge so both answer alike.

A :class:`ContractServer` parses and validates requests, checks the bearer token, applies the
``Idempotency-Key`` rule to POSTs and turns a :class:`Backend`'s dicts (or typed errors) into JSON.
The backend is where the two differ: simulated market vs. the MetaTrader5 package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import Any, Protocol

from engine.errors import ConfigError, InvalidRequestError
from engine.mt5 import contract, jsonio
from engine.mt5.handler import Answer, answer_of, connection_error, handler_class
from engine.timeframes import Timeframe

_FAR_PAST = datetime(1970, 1, 1)
_FAR_FUTURE = datetime(2100, 1, 1)
CONNECTION_TIMEOUT = 120.0  # seconds a connection may stay silent (handshake, request, keep-alive idle)


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


class Hooks(Protocol):
    """Fault injection (simulator only): answer early, or execute and then drop the response."""

    def before(self, method: str, route: str) -> tuple[int, dict[str, Any], dict[str, str]] | None: ...
    def drop_response(self, method: str, route: str) -> bool: ...
    def garble_response(self, method: str, route: str) -> bool: ...


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


def _one(query: Mapping[str, list[str]], key: str, *, required: bool = True) -> str | None:
    values = query.get(key)
    if not values or values[0].strip() == "":
        if required:
            raise InvalidRequestError(f"missing query parameter {key!r}")
        return None
    return values[0].strip()


def _int(query: Mapping[str, list[str]], key: str, default: int | None = None) -> int:
    text = _one(query, key, required=default is None)
    if text is None:
        return int(default)  # type: ignore[arg-type]
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequestError(f"{key}={text!r} must be an integer") from None
    if value < 0:
        raise InvalidRequestError(f"{key} must be >= 0, got {value}")
    return value


class ServerStats:
    """Connections accepted, requests in flight and requests handled per (method, route): for operators,
    and for tests that wait until the server has seen what a client sent instead of sleeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = 0
        self._in_flight = 0
        self._requests: Counter[tuple[str, str]] = Counter()

    def connection_opened(self) -> None:
        with self._lock:
            self._connections += 1

    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def request_handled(self, method: str, route: str) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests[(method, route)] += 1

    @property
    def in_flight(self) -> int:
        """Requests read and not yet answered (or dropped): a stalled answer counts until it is let go."""
        with self._lock:
            return self._in_flight

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def handled(self, method: str, route: str) -> int:
        """Requests of ``method`` to ``route`` answered (or dropped by a fault) so far."""
        with self._lock:
            return self._requests[(method, route)]


class ContractServer:
    """A threaded HTTP server speaking the MT5 REST contract over ``backend``.

    ``port=0`` picks a free port (read it back from :attr:`url`). Use as a context manager, or
    ``start()``/``stop()``; ``stop`` is bounded by ``timeout``.
    """

    def __init__(self, backend: Backend, *, api_key: str, host: str = "127.0.0.1", port: int = 0,
                 max_bars: int = contract.DEFAULT_MAX_BARS, max_ticks: int = contract.DEFAULT_MAX_TICKS,
                 hooks: Hooks | None = None, idempotency_capacity: int = 10_000,
                 ssl_context: ssl.SSLContext | None = None, connection_timeout: float = CONNECTION_TIMEOUT) -> None:
        if not api_key:
            raise ConfigError("api_key", "the server needs a non-empty API key; clients send it as a Bearer token")
        self.backend = backend
        self.hooks = hooks
        self.max_bars = max_bars
        self.max_ticks = max_ticks
        self._token = api_key.encode()
        self._post_lock = threading.Lock()
        self._cache = _IdempotencyCache(idempotency_capacity)
        self.stats = ServerStats()
        self._thread: threading.Thread | None = None
        self._httpd = ThreadingHTTPServer((host, port), handler_class(self, connection_timeout))
        self._httpd.daemon_threads = True
        self._httpd.handle_error = connection_error  # type: ignore[method-assign]
        self._scheme = "http"
        if ssl_context is not None:
            # The handshake runs in the connection's own thread (on its first read, under the handler's
            # timeout), not in accept(): one client that never sends a ClientHello would freeze the server.
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True,
                                                         do_handshake_on_connect=False)
            self._scheme = "https"

    def __repr__(self) -> str:
        return f"ContractServer(url={self.url!r}, backend={type(self.backend).__name__})"

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self) -> ContractServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"mt5-contract-{self.url}", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`interrupt`; then :meth:`stop` closes the socket."""
        self._httpd.serve_forever(poll_interval=0.2)

    def interrupt(self) -> None:
        """Make a running :meth:`serve_forever` return; safe to call from a signal handler."""
        threading.Thread(target=self._httpd.shutdown, daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from handler threads) --------------------------------------------
    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self._token)

    def get(self, route: str, arg: str | None, query: Mapping[str, list[str]]) -> Any:
        backend = self.backend
        if route == "/account_info":
            return backend.account_info()
        if route == "/symbol_info" and arg:
            return backend.symbol_info(arg)
        if route == "/symbol_info_tick" and arg:
            return backend.symbol_info_tick(arg)
        if route == "/fetch_data_pos":
            symbol, tf = _one(query, "symbol"), contract.timeframe(_one(query, "timeframe", required=False) or "M1")
            count = _int(query, "num_bars", 100)
            if count > self.max_bars:
                raise InvalidRequestError(f"num_bars={count} is over this server's cap of {self.max_bars}; "
                                          "fetch in chunks (fetch_data_range) of at most that many bars")
            return backend.rates_from_pos(symbol, tf, _int(query, "start_pos", 0), count)
        if route == "/fetch_data_range":
            symbol, tf = _one(query, "symbol"), contract.timeframe(_one(query, "timeframe", required=False) or "M1")
            start = contract.parse_server_time(_one(query, "start", required=False), "start")
            end = contract.parse_server_time(_one(query, "end", required=False), "end")
            contract.check_range(start, end)
            span = int((end - start).total_seconds() // tf.seconds) + 1
            if span > self.max_bars:
                raise InvalidRequestError(f"range {contract.iso(start)}..{contract.iso(end)} spans {span} {tf.mt5} "
                                          f"bars, over this server's cap of {self.max_bars}; fetch it in chunks")
            return backend.rates_range(symbol, tf, start, end)
        if route == "/fetch_ticks_range":
            symbol = _one(query, "symbol")
            start = contract.parse_server_time(_one(query, "start", required=False), "start")
            end = contract.parse_server_time(_one(query, "end", required=False), "end")
            contract.check_range(start, end)
            ticks = backend.ticks_range(symbol, start, end)
            if len(ticks) > self.max_ticks:
                raise InvalidRequestError(f"range holds {len(ticks)} ticks, over this server's cap of "
                                          f"{self.max_ticks}; fetch shorter ranges")
            return ticks
        if route == "/get_positions":
            return backend.positions(_one(query, "symbol", required=False))
        if route == "/orders_get":
            return backend.orders(_one(query, "symbol", required=False))
        if route in ("/history_deals_get", "/history_orders_get"):
            raw_start, raw_end = _one(query, "start", required=False), _one(query, "end", required=False)
            start = contract.parse_server_time(raw_start, "start") if raw_start else _FAR_PAST
            end = contract.parse_server_time(raw_end, "end") if raw_end else _FAR_FUTURE
            contract.check_range(start, end)
            fn = backend.history_deals if route == "/history_deals_get" else backend.history_orders
            return fn(start, end)
        raise InvalidRequestError(f"no route GET {route}; see docs/mt5_rest_api.md", status=404)

    def post(self, route: str, body: Any) -> Any:
        if route == "/order":
            return self.backend.order_send(contract.parse_order(body))
        if route == "/close_position":
            if not isinstance(body, Mapping):
                raise InvalidRequestError("close_position body must be a JSON object with 'ticket'")
            ticket = body.get("ticket")
            if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket <= 0:
                raise InvalidRequestError(f"close_position needs a positive integer 'ticket', got {ticket!r}")
            volume = body.get("volume")
            if volume is not None and (isinstance(volume, bool) or not isinstance(volume, int | float)
                                       or volume <= 0):
                raise InvalidRequestError(f"volume must be a positive number or absent, got {volume!r}")
            comment = body.get("comment") or ""
            if not isinstance(comment, str) or len(comment) > contract.MAX_COMMENT:
                raise InvalidRequestError(f"comment must be a string of at most {contract.MAX_COMMENT} characters")
            deviation, magic = body.get("deviation", 20), body.get("magic", 0)
            if not isinstance(deviation, int) or not isinstance(magic, int) or deviation < 0 or magic < 0:
                raise InvalidRequestError("deviation and magic must be non-negative integers")
            return self.backend.close_position(ticket, None if volume is None else float(volume), deviation,
                                               magic, comment)
        raise InvalidRequestError(f"no route POST {route}; see docs/mt5_rest_api.md", status=404)

    def answer_post(self, route: str, raw: bytes, key: str | None) -> Answer:
        try:
            body = jsonio.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return Answer(400, {"error": "malformed JSON body; send a JSON object"}, {})
        digest = hashlib.sha256(route.encode() + b"\0" + json.dumps(body, sort_keys=True).encode()).hexdigest()
        # One POST at a time: the key check, the execution and the cache write must be atomic, or two
        # racing retries of one order could both execute.
        with self._post_lock:
            if key:
                cached = self._cache.get(key, digest)
                if cached is not None:
                    return cached
            answer = answer_of(lambda: self.post(route, body))
            # An MT5 "timeout"/"no connection" retcode is not an outcome: the retry must reach MT5 again
            # (after the client's reconciliation), so it is not remembered.
            undecided = isinstance(answer.body, dict) and answer.body.get("retcode") in contract.RECONCILE_RETCODES
            if key and answer.status < 500 and not undecided:
                self._cache.put(key, digest, answer)
            return answer
