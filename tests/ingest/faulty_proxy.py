"""A seeded fault-injecting HTTP proxy in front of the MT5 simulator, on 127.0.0.1.

The simulator injects errors (503 + Retry-After) itself; this hop adds what it does not: answers that stall
past the client's read timeout, answers cut short (a valid JSON list with only a prefix of its rows, or a body
that stops mid-way), rows sent twice inside an answer, and connections closed without an answer. Every
request really goes to the simulator first (it executes), so a lost answer is a real lost answer.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class ProxyFaults:
    stall_rate: float = 0.0  # hold the answer past the client's read timeout, then drop it
    stall_seconds: float = 1.5
    truncate_rate: float = 0.0  # a list answer keeps a random non-empty prefix of its rows
    cut_body_rate: float = 0.0  # the body stops half way (an unreadable answer)
    duplicate_rate: float = 0.0  # some rows of a list answer are sent twice
    drop_rate: float = 0.0  # the connection is closed without an answer
    seed: int = 7
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, name: str) -> bool:
        with self._lock:
            hit = self._rng.random() < getattr(self, f"{name}_rate")
            if hit:
                self.counts[name] = self.counts.get(name, 0) + 1
            return hit

    def prefix(self, n: int) -> int:
        with self._lock:
            return self._rng.randint(1, max(n - 1, 1))

    def sample(self, n: int, k: int) -> list[int]:
        with self._lock:
            return sorted(self._rng.sample(range(n), min(k, n)))


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request (the test SIGKILLs the ingestor) resets its connection: expected."""


class FaultyProxy:
    def __init__(self, upstream: str, faults: ProxyFaults) -> None:
        self.upstream, self.faults = upstream.rstrip("/"), faults
        self._session = requests.Session()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _mangle(self, body: bytes) -> bytes:
        faults = self.faults
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return body
        if isinstance(payload, list) and len(payload) > 1:
            if faults.draw("duplicate"):
                for i in reversed(faults.sample(len(payload), max(1, len(payload) // 10))):
                    payload.insert(i, dict(payload[i]))
            if faults.draw("truncate"):
                payload = payload[:faults.prefix(len(payload))]
        return json.dumps(payload).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    upstream = proxy._session.get(proxy.upstream + self.path, timeout=30,
                                                  headers={"Authorization": self.headers.get("Authorization", "")})
                except requests.RequestException:
                    self.close_connection = True
                    return
                faults = proxy.faults
                if upstream.status_code == 503:  # the simulator's own injected errors, counted here
                    with faults._lock:
                        faults.counts["503"] = faults.counts.get("503", 0) + 1
                if faults.draw("drop"):
                    self.close_connection = True
                    return
                if faults.draw("stall"):
                    time.sleep(faults.stall_seconds)
                    self.close_connection = True
                    return
                body = proxy._mangle(upstream.content) if upstream.status_code == 200 else upstream.content
                cut = upstream.status_code == 200 and faults.draw("cut_body")
                self.send_response(upstream.status_code)
                for name in ("Content-Type", "Retry-After"):
                    if name in upstream.headers:
                        self.send_header(name, upstream.headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.close_connection = True

        return Handler
