"""Review regression: one stalled TLS client must not freeze the bridge for everyone."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pandas as pd

from engine.connectors.mt5_rest import MT5RestClient
from engine.connectors.server import ContractServer
from engine.connectors.sim_market import SimMarket, SimSettings
from engine.connectors.simulator import DEV_TOKEN
from tests.connectors.test_mt5_serving import tls_files  # noqa: F401  (fixture)


def test_a_client_that_never_completes_the_tls_handshake_blocks_nobody(
        tls_files: tuple[Path, Path], sample_bars: pd.DataFrame) -> None:  # noqa: F811
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, ssl_context=context) as server:
        host, port = server.url.removeprefix("https://").split(":")
        stalled = socket.create_connection((host, int(port)), timeout=5)  # TCP only, no ClientHello
        try:
            time.sleep(0.2)
            client = MT5RestClient(server.url, DEV_TOKEN, ca_bundle=str(cert), retries=0, connect_timeout=2,
                                   read_timeout=2)
            started = time.monotonic()
            assert client.account_info()["balance"] == 10_000
            assert time.monotonic() - started < 2
            client.close()
        finally:
            stalled.close()


def test_a_silent_plain_connection_is_closed_after_the_connection_timeout(
        sample_bars: pd.DataFrame, monkeypatch) -> None:
    from engine.connectors import server as server_module

    monkeypatch.setattr(server_module, "CONNECTION_TIMEOUT", 0.3)
    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""  # the server hung up on us
            assert time.monotonic() - started < 3
