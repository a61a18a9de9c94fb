"""Hard deadlines and the response-size cap of MT5RestClient, against real sockets on 127.0.0.1: a server
that trickles its answer one byte every 0.4 s (each read gets data in time, the whole never comes)
cannot hold a call past its deadline, and an order caught that way is reconciled, never resent blind."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from engine.errors import BadResponseError, RequestTimeoutError
from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN
from engine.trading.execution import place_order

BODY = b'{"status": "healthy", "mt5_connected": true}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class RawServer:
    """Answers every request on 127.0.0.1 with ``respond(conn)``; bounded by ``stop``."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.respond = respond
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            try:
                self.respond(conn)
            except OSError:  # the client hung up: what a deadline does
                return

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def trickle(stopped: threading.Event, interval: float = 0.4) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        for byte in ANSWER:
            if stopped.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(interval)
    return respond


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[threading.Event], Callable[[socket.socket], None]]], RawServer]]:
    made: list[RawServer] = []

    def _make(factory: Callable[[threading.Event], Callable[[socket.socket], None]]) -> RawServer:
        stopped = threading.Event()
        server = RawServer(factory(stopped))
        server.stopped = stopped
        made.append(server)
        return server

    yield _make
    for server in made:
        server.stop()


@pytest.mark.parametrize("retries", [0, 3])
def test_a_trickling_server_cannot_hold_a_call_past_its_deadline(raw_server: Callable[..., RawServer],
                                                                retries: int) -> None:
    server = raw_server(trickle)
    client = MT5RestClient(server.url, DEV_TOKEN, read_timeout=1.0, deadline=1.5, retries=retries,
                           backoff_base=0.01)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match=r"deadline of 1\.5s"):
        client.health()
    assert time.monotonic() - started < 1.5 + 0.5  # the deadline, give or take the scheduler
    client.close()


def test_an_order_whose_answer_trickles_is_reconciled_not_resent(make_simulator: Callable[..., Simulator],
                                                                 make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator()
    sim.faults.trickle_next, sim.faults.only_route = 1, "/order"
    client = make_client(sim.url, read_timeout=1.0, deadline=1.5, server_time_offset_hours=2)
    started = time.monotonic()
    res = place_order(client, "BTCUSD", "buy", 0.1, magic=61)
    assert res.reconciled and res.retcode == contract.RETCODE_DONE
    assert time.monotonic() - started < 1.5 + 1.0  # the post's deadline, then a quick lookup
    assert sim.server.stats.handled("POST", "/order") == 1
    assert len(client.positions()) == 1


def test_answers_over_the_size_cap_are_refused(simulator: Simulator, raw_server: Callable[..., RawServer],
                                              make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(simulator.url, max_response_bytes=4096, server_time_offset_hours=2)
    assert len(client.bars("BTCUSD", "M1", 5)) == 5
    with pytest.raises(BadResponseError, match=r"announces \d+ bytes, over the client's cap of 4096"):
        client.bars("BTCUSD", "M1", 500)

    def endless(stopped: threading.Event) -> Callable[[socket.socket], None]:
        def respond(conn: socket.socket) -> None:  # chunked, no length announced, never ending
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not stopped.is_set():
                conn.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
        return respond

    streaming = make_client(raw_server(endless).url, max_response_bytes=64 * 1024, server_time_offset_hours=2,
                            dialect="engine")
    with pytest.raises(BadResponseError, match="exceeds the client's cap"):
        streaming.account_info()
