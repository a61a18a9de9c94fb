"""The contract's HTTP server, shared by the simulator and the bridge: the ASGI app (engine.mt5.asgi)
served by uvicorn on an event loop, in a thread of its own or in the calling thread.

Production limits: a connection cap (further requests get 503 until connections close), an idle timeout
that also closes a connection that never sends a request, a request-body cap, TLS handshakes on the event
loop (a client that never sends its ClientHello holds no thread). ``stop`` closes kept-alive connections
too: after it returns nothing is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections import Counter
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from engine.mt5 import contract
from engine.mt5.asgi import MAX_BODY, TRANSPORT_KEY, Hooks, build_app
from engine.mt5.service import Backend, ContractService

__all__ = ["Backend", "ContractServer", "Hooks", "ServerStats"]

CONNECTION_TIMEOUT = 120.0  # seconds a connection may stay idle (before its first request, or between two)
MAX_CONNECTIONS = 64  # open connections beyond this get 503 + Retry-After; a bridge has a handful of clients
SHUTDOWN_GRACE = 5.0  # seconds requests in flight get to finish on stop


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
        """TCP connections accepted so far (counted before any TLS handshake)."""
        with self._lock:
            return self._connections

    def handled(self, method: str, route: str) -> int:
        """Requests of ``method`` to ``route`` answered (or dropped by a fault) so far."""
        with self._lock:
            return self._requests[(method, route)]

    def per_route(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._requests)


def _protocol(stats: ServerStats) -> type[HttpToolsProtocol]:
    class Protocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, plus: count accepts, time out idle new connections, and let the
        app drop a connection (the simulator's fault hooks)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            stats.connection_opened()  # at accept time: before the TLS handshake

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # uvicorn starts its idle timer only after a first answer: a client that connects and never
            # sends a request would hold its connection (and a place under the cap) forever.
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["extensions"] = {TRANSPORT_KEY: self.transport}  # type: ignore[typeddict-unknown-key]

    return Protocol


class _Uvicorn(uvicorn.Server):
    """uvicorn's server whose main loop wakes at once when told to stop (not on its next 0.1 s tick)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.wake: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self.loop, self.wake = asyncio.get_running_loop(), asyncio.Event()
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)

    def exit_soon(self) -> None:
        self.should_exit = True
        if self.loop is not None and self.wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self.loop.call_soon_threadsafe(self.wake.set)


class ContractServer:
    """The MT5 REST contract over ``backend``, served by uvicorn.

    ``port=0`` picks a free port (read it back from :attr:`url`; the socket is bound and listening as
    soon as the object exists). Use as a context manager, or ``start()``/``stop()``; ``serve_forever``
    serves in the calling thread until :meth:`interrupt`.
    """

    def __init__(self, backend: Backend, *, api_key: str, host: str = "127.0.0.1", port: int = 0,
                 max_bars: int = contract.DEFAULT_MAX_BARS, max_ticks: int = contract.DEFAULT_MAX_TICKS,
                 hooks: Hooks | None = None, idempotency_capacity: int = 10_000,
                 ssl_context: ssl.SSLContext | None = None, connection_timeout: float = CONNECTION_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, max_body: int = MAX_BODY) -> None:
        self.backend = backend
        self.hooks = hooks
        self.service = ContractService(backend, api_key=api_key, max_bars=max_bars, max_ticks=max_ticks,
                                       idempotency_capacity=idempotency_capacity)
        self.stats = ServerStats()
        self.app = build_app(self.service, stats=self.stats, hooks=hooks, max_body=max_body)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        config = uvicorn.Config(self.app, http=_protocol(self.stats), lifespan="off", access_log=False,
                                log_config=None, proxy_headers=False, server_header=False, date_header=False,
                                limit_concurrency=max_connections,
                                timeout_keep_alive=connection_timeout,  # type: ignore[arg-type]  # float is fine
                                timeout_graceful_shutdown=int(SHUTDOWN_GRACE))
        config.load()
        config.ssl = ssl_context  # uvicorn builds contexts from files only; ours may be any SSLContext
        scheme = "https" if ssl_context is not None else "http"
        bound, port = self._sock.getsockname()[:2]
        self._url = f"{scheme}://{f'[{bound}]' if ':' in bound else bound}:{port}"
        self._server = _Uvicorn(config)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ContractServer(url={self.url!r}, backend={type(self.backend).__name__})"

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> ContractServer:
        """Serve in a background thread; returns once the server accepts requests."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                            name=f"mt5-contract-{self.url}", daemon=True)
            self._thread.start()
            while not self._server.started and self._thread.is_alive():
                self._thread.join(0.005)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`interrupt` (or SIGINT/SIGTERM in the main thread)."""
        self._server.run(sockets=[self._sock])

    def interrupt(self) -> None:
        """Make a running :meth:`serve_forever` return; safe to call from a signal handler."""
        self._server.exit_soon()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close idle and kept-alive connections, let requests in flight finish (bounded)."""
        if self._thread is not None:
            self._server.exit_soon()
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
