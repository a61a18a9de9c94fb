"""MT5RestClient's transport against real HTTP servers on 127.0.0.1 (the simulator, and tiny stub servers
for broken answers): typed errors, GET retries and Retry-After, the key kept secret, injected sessions
that could resend a POST refused."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from engine.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    NetworkError,
    RequestTimeoutError,
    ServerError,
)
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from tests.mt5.conftest import REPLAY_START


def test_wrong_key_is_an_auth_error_without_the_key(simulator: Simulator,
                                                    make_client: Callable[..., MT5RestClient],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-never-to-be-seen-0123456789"
    client = make_client(simulator.url, api_key=secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        client.account_info()
    assert secret not in str(info.value) and secret not in repr(client) and "***" in repr(client)
    assert secret not in caplog.text


def test_get_retries_server_errors_and_honours_retry_after(make_simulator: Callable[..., Simulator],
                                                           make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator()
    sim.faults.fail_next, sim.faults.retry_after = 2, "1"
    waits: list[float] = []
    client = make_client(sim.url, sleep=waits.append, max_retry_after=0.5)
    assert client.account_info()["balance"] == 10_000
    assert waits == [0.5, 0.5]  # the server's Retry-After (1 s) capped by max_retry_after, not our backoff
    sim.faults.fail_next, sim.faults.retry_after = 10, None
    waits.clear()
    with pytest.raises(ServerError, match="503"):
        client.account_info()
    assert len(waits) == 3  # retries=3: bounded
    assert all(0 <= w <= 0.05 for w in waits)  # our own backoff (no Retry-After), capped by backoff_cap


def test_get_timeout_is_retryable_and_bounded(make_simulator: Callable[..., Simulator],
                                             make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, latency_ms=600))
    client = make_client(sim.url, read_timeout=0.2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="read timeout"):
        client.account_info()
    assert time.monotonic() - t0 < 3


def test_unreachable_server_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MT5RestClient(f"http://127.0.0.1:{port}", DEV_TOKEN, retries=1, backoff_base=0.01,
                           connect_timeout=1.0)
    with pytest.raises(NetworkError, match="cannot reach"):
        client.health()


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/health": (200, "text/html", b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"),
        "/account_info": (200, "application/json", b'{"balance": 1, "equity": '),
        "/symbol_info/BTCUSD": (502, "text/html", b"<html>Bad gateway</html>"),
        "/get_positions": (200, "application/json", b'{"not": "a list"}'),
        "/fetch_data_pos": (200, "application/json", b'[{"time": "2024-01-01T00:00:00", "open": "x", "high": 1,'
                                                     b' "low": 1, "close": 1}]'),
    }

    def do_GET(self) -> None:
        status, kind, body = self.routes.get(self.path.split("?")[0], (404, "text/html", b"<h1>Not Found</h1>"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(5)
    httpd.server_close()


@pytest.mark.parametrize(("call", "error", "needle"), [
    (lambda cl: cl.health(), BadResponseError, "text/html"),
    (lambda cl: cl.account_info(), BadResponseError, "not JSON"),
    (lambda cl: cl.symbol_info("BTCUSD"), ServerError, "502"),
    (lambda cl: cl.positions(), BadResponseError, "list"),
    (lambda cl: cl.bars("BTCUSD", "M1", 1), BadResponseError, "non-numeric"),
    (lambda cl: cl.orders(), BadResponseError, "not JSON"),
])
def test_broken_answers_get_typed_errors(stub_url: str, call: Callable[[MT5RestClient], Any],
                                         error: type[Exception], needle: str) -> None:
    client = MT5RestClient(stub_url, DEV_TOKEN, retries=1, backoff_base=0.0, server_time_offset_hours=0,
                           sleep=lambda s: None)
    with pytest.raises(error, match=needle):
        call(client)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        MT5RestClient("ftp://host", DEV_TOKEN)
    with pytest.raises(ConfigError, match="api_key"):
        MT5RestClient("http://127.0.0.1:1", "")
    with pytest.raises(ConfigError, match="timeout"):
        MT5RestClient("http://127.0.0.1:1", DEV_TOKEN, read_timeout=0)
    assert MT5RestClient("https://bridge.example", DEV_TOKEN).transport.verify is True  # TLS checked by default


def test_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        MT5RestClient("http://bridge.lan:8443", DEV_TOKEN)
    MT5RestClient("http://bridge.lan:8443", DEV_TOKEN, allow_insecure_http=True).close()  # explicit opt-in
    for loopback in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        MT5RestClient(loopback, DEV_TOKEN).close()
    MT5RestClient("https://bridge.lan:8443", DEV_TOKEN).close()


def test_injected_session_is_used_and_left_open(simulator: Simulator) -> None:
    import requests

    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.path_url))
    with MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2) as client:
        client.account_info()
        client.latest_tick("BTCUSD")
    assert seen == ["/account_info", "/symbol_info_tick/BTCUSD"]
    assert session.get(simulator.url + "/health", timeout=5).json()["status"] == "healthy"  # still open
    session.close()


@pytest.mark.parametrize("retry", [Retry(total=3, allowed_methods=None), Retry(total=2, read=2, status=2,
                                                                              allowed_methods={"GET", "POST"})])
def test_a_session_whose_adapter_retries_posts_is_refused(simulator: Simulator, retry: Retry) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    with pytest.raises(ConfigError, match="max_retries"):
        MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2)
    session.close()


def test_a_session_retrying_only_connects_or_gets_is_accepted(simulator: Simulator) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=3, other=0, status_forcelist=[503])))
    session.mount("https://", HTTPAdapter(max_retries=Retry(connect=3, read=0, status=0, other=0,
                                                            allowed_methods=None)))
    with MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2) as cl:
        assert cl.account_info()["balance"] > 0
    session.close()


def test_a_retrying_adapter_mounted_on_the_order_route_only_is_refused(simulator: Simulator) -> None:
    session = requests.Session()
    session.mount(simulator.url + "/order", HTTPAdapter(max_retries=Retry(total=2, allowed_methods=None)))
    with pytest.raises(ConfigError, match="max_retries"):
        MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2)
    session.close()
