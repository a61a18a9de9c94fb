"""The HTTP side of a ContractServer: one handler class per server, JSON answers, fault hooks.

The handler reads the request, checks the bearer token, lets the server's hooks inject faults and hands
routing to :class:`engine.mt5.server.ContractServer`; it writes the answer (or, under a fault, none).
Headers, and so the bearer token, are never logged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from engine.errors import EngineError, InvalidRequestError, RetryableError
from engine.mt5 import contract, jsonio

if TYPE_CHECKING:
    from engine.mt5.server import ContractServer

log = logging.getLogger("engine.mt5.server")

MAX_BODY = 64 * 1024  # an order is a few hundred bytes


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


def connection_error(request: Any, client_address: Any) -> None:
    """A connection-level failure (TLS handshake, reset, timeout): one log line, not a traceback on stderr."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OSError):  # TLS failures, resets and timeouts are the client's business
        log.info("connection from %s dropped: %s", client_address, type(exc).__name__)
    else:
        log.error("error while serving %s", client_address, exc_info=exc)


def answer_of(fn: Callable[[], Any]) -> Answer:
    try:
        return Answer(200, fn(), {})
    except InvalidRequestError as exc:
        return Answer(exc.status, {"error": str(exc)}, {})
    except RetryableError as exc:
        return Answer(503, {"error": str(exc)}, {"Retry-After": "1"})
    except EngineError as exc:
        return Answer(500, {"error": f"{type(exc).__name__}: {exc}"}, {})
    except Exception:
        log.exception("internal error while serving a request")
        return Answer(500, {"error": "internal server error; see the server log"}, {})


def handler_class(server: ContractServer, connection_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        # Socket timeout per connection: a silent or half-open client (or an idle keep-alive one) frees its
        # thread instead of holding it forever. Clients reconnect transparently.
        timeout = connection_timeout
        server_version = "engine-mt5/1"

        def setup(self) -> None:
            server.stats.connection_opened()
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:
            # The request line only: headers (and so the bearer token) are never logged.
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, answer: Answer) -> None:
            payload = jsonio.dumps(answer.body)
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if answer.status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="mt5"')
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _send_raw(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self) -> tuple[str, str | None, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            segments = [unquote(s) for s in parts.path.split("/") if s]
            route = "/" + segments[0] if segments else "/"
            arg = segments[1] if len(segments) > 1 else None
            return route, arg, parse_qs(parts.query, keep_blank_values=True)

        def _drop(self) -> None:
            # Execution happened but the client never hears about it: exactly the case the
            # Idempotency-Key and reconciliation exist for.
            self.close_connection = True

        def _early(self, method: str, route: str) -> bool:
            if server.hooks is None:
                return False
            early = server.hooks.before(method, route)
            if early is None:
                return False
            status, body, headers = early
            if method == "POST":
                self._read_body()
            self._send(Answer(status, body, headers))
            return True

        def _read_body(self) -> bytes | None:
            """The request body, or None when its length is missing, unreadable or over the limit."""
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return None
            if length < 0 or length > MAX_BODY:
                return None
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self) -> None:
            route, arg, query = self._route()
            server.stats.request_started()
            try:
                self._get(route, arg, query)
            finally:
                server.stats.request_handled("GET", route)

        def do_POST(self) -> None:
            route, _, _ = self._route()
            server.stats.request_started()
            try:
                self._post(route)
            finally:
                server.stats.request_handled("POST", route)

        def _get(self, route: str, arg: str | None, query: dict[str, list[str]]) -> None:
            if route == "/health":
                self._send(answer_of(server.backend.health))
                return
            if not server.authorised(self.headers.get("Authorization")):
                self._send(Answer(401, {"error": "missing or invalid bearer token"}, {}))
                return
            if self._early("GET", route):
                return
            answer = answer_of(lambda: server.get(route, arg, query))
            if server.hooks is not None and server.hooks.drop_response("GET", route):
                self._drop()
                return
            self._send(answer)

        def _post(self, route: str) -> None:
            if not server.authorised(self.headers.get("Authorization")):
                self._read_body()
                self._send(Answer(401, {"error": "missing or invalid bearer token"}, {}))
                return
            if self._early("POST", route):
                return
            raw = self._read_body()
            if raw is None:
                # The body was not read, so the connection cannot be reused for another request.
                self.close_connection = True
                self._send(Answer(400, {"error": f"request body missing a valid Content-Length or over "
                                                  f"{MAX_BODY} bytes"}, {}))
                return
            answer = server.answer_post(route, raw, self.headers.get(contract.IDEMPOTENCY_HEADER))
            if server.hooks is not None and server.hooks.drop_response("POST", route):
                self._drop()
                return
            if server.hooks is not None and server.hooks.garble_response("POST", route):
                # Executed, but a proxy in between answers with its own page: the client cannot tell.
                self._send_raw(200, "text/html", b"<html><body>502 upstream hiccup</body></html>")
                return
            self._send(answer)

        def _not_allowed(self) -> None:
            self._read_body()
            self._send(Answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported"}, {}))

        do_PUT = do_DELETE = do_PATCH = _not_allowed

    return Handler
