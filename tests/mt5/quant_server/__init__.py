"""The quant-server Flask bridge's dialect served for real on 127.0.0.1 (werkzeug, threaded), over a
``MetaTrader5`` module, with per-route request counts and one fault: answers held past a client's timeout."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from tests.mt5.quant_server.app import create_app


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class QuantServer:
    def __init__(self, mt5: ModuleType) -> None:
        self.mt5 = mt5
        self.app = create_app(mt5)
        self.requests: Counter[tuple[str, str]] = Counter()
        self.stall_next, self.stall_seconds, self.only_route = 0, 1.0, "/order"
        self._lock = threading.Lock()
        self._httpd = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="quant-server", daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        route = "/" + path.strip("/").split("/")[0]
        body = self.app.wsgi_app(environ, start_response)  # executes the request
        with self._lock:
            self.requests[(method, route)] += 1
            stall = self.stall_next > 0 and route == self.only_route
            if stall:
                self.stall_next -= 1
        if stall:  # executed; the answer comes after the client gave up
            time.sleep(self.stall_seconds)
        return body

    def handled(self, method: str, route: str) -> int:
        with self._lock:
            return self.requests[(method, route)]

    def start(self) -> QuantServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join(5)
        self._httpd.server_close()
