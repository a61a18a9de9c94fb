"""Hard deadlines for HTTP requests: a request that outlives its deadline has its socket shut down.

requests' (urllib3's) timeouts bound each socket operation, not the request: a server that trickles
one byte every 0.4 s keeps a read timeout of 1 s happy forever. A :class:`Watchdog` thread holds the
deadline of every request in flight and shuts down the socket of one that passes it, so the blocked
read fails at once. The sockets are found through the connection pool: :func:`install` makes a
requests adapter's pools report each connection they use to the watchdog.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from engine.errors import ConfigError


class _Armed:
    __slots__ = ("conns", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conns: list[Any] = []
        self.expired = False


class Watchdog:
    """Deadlines of the requests in flight, one thread per client (started on first use, ended on close)."""

    def __init__(self, name: str = "mt5-deadline") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._armed: set[_Armed] = set()
        self._local = threading.local()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextlib.contextmanager
    def armed(self, deadline: float) -> Any:
        """Within the block, connections this thread's requests use are shut down at ``deadline``
        (time.monotonic()); yields the entry, whose ``expired`` tells afterwards whether that happened."""
        entry = _Armed(deadline)
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
                self._thread.start()
            earliest = min((a.deadline for a in self._armed), default=None)
            self._armed.add(entry)
            if earliest is None or deadline < earliest:
                self._cond.notify()
        self._local.entry = entry
        try:
            yield entry
        finally:
            self._local.entry = None
            with self._cond:
                self._armed.discard(entry)

    def attach(self, conn: Any) -> None:
        """Called by the pool with the connection a request is about to use (in the request's thread)."""
        entry = getattr(self._local, "entry", None)
        if entry is not None:
            with self._cond:
                entry.conns.append(conn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for entry in [a for a in self._armed if a.deadline <= now and not a.expired]:
                    entry.expired = True
                    for conn in entry.conns:
                        _shut(conn)
                pending = [a.deadline for a in self._armed if not a.expired]
                self._cond.wait(max(min(pending) - now, 0.0) if pending else None)


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[HTTPConnectionPool], watchdog: Watchdog) -> type[HTTPConnectionPool]:
    class Pool(base):  # type: ignore[misc, valid-type]
        def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
            watchdog.attach(conn)
            return super()._make_request(conn, *args, **kwargs)

    return Pool


def install(adapter: Any, watchdog: Watchdog, where: str) -> None:
    """Make ``adapter``'s connection pools report their connections to ``watchdog``."""
    if not isinstance(adapter, HTTPAdapter):
        raise ConfigError("connector.session", f"the session's adapter for {where} is a {type(adapter).__name__}, "
                                               "not a requests HTTPAdapter: the client cannot enforce its "
                                               "deadlines through it")
    manager = adapter.poolmanager
    manager.clear()  # pools made before this point would not report
    manager.pool_classes_by_scheme = {"http": _watched(HTTPConnectionPool, watchdog),
                                      "https": _watched(HTTPSConnectionPool, watchdog)}
