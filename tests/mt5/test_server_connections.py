"""The contract server's connections (real sockets on 127.0.0.1): TLS verified by default, and neither a
client that never completes its TLS handshake nor a silent one can hold the server."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import OperationalError
from engine.mt5.client import MT5RestClient
from engine.mt5.server import ContractServer
from engine.mt5.sim.market import SimMarket
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from tests.mt5.conftest import wait_until


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_is_verified_by_default(tls_files: tuple[Path, Path], sample_bars: pd.DataFrame) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, ssl_context=context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        untrusting = MT5RestClient(server.url, DEV_TOKEN, retries=0)
        with pytest.raises(OperationalError, match="TLS verification"):
            untrusting.account_info()
        trusting = MT5RestClient(server.url, DEV_TOKEN, ca_bundle=str(cert))
        assert trusting.account_info()["balance"] == 10_000
        untrusting.close()
        trusting.close()


def test_a_client_that_never_completes_the_tls_handshake_blocks_nobody(
        tls_files: tuple[Path, Path], sample_bars: pd.DataFrame) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, ssl_context=context) as server:
        host, port = server.url.removeprefix("https://").split(":")
        stalled = socket.create_connection((host, int(port)), timeout=5)  # TCP only, no ClientHello
        try:
            # The server has accepted the stalled connection (its handshake waits in that connection's thread).
            wait_until(lambda: server.stats.connections >= 1, "the server has accepted the stalled connection")
            client = MT5RestClient(server.url, DEV_TOKEN, ca_bundle=str(cert), retries=0, connect_timeout=2,
                                   read_timeout=2)
            started = time.monotonic()
            assert client.account_info()["balance"] == 10_000
            assert time.monotonic() - started < 2
            client.close()
        finally:
            stalled.close()


def test_a_silent_plain_connection_is_closed_after_the_connection_timeout(
        sample_bars: pd.DataFrame) -> None:
    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, connection_timeout=0.3) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""  # the server hung up on us
            assert time.monotonic() - started < 3


def test_connections_over_the_cap_get_503_until_others_close(sample_bars: pd.DataFrame) -> None:
    import requests

    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, max_connections=2) as server:
        host, port = server.url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        wait_until(lambda: server.stats.connections >= 2, "the server has accepted both idle connections")
        assert requests.get(server.url + "/health", timeout=5).status_code == 503
        for conn in idle:
            conn.close()
        wait_until(lambda: requests.get(server.url + "/health", timeout=5).status_code == 200,
                   "the closed connections no longer count against the cap")


def test_stop_closes_kept_alive_connections(sample_bars: pd.DataFrame) -> None:
    import requests

    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    server = ContractServer(market, api_key=DEV_TOKEN).start()
    with requests.Session() as session:
        assert session.get(server.url + "/health", timeout=5).status_code == 200  # a kept-alive connection
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(requests.ConnectionError):
            session.get(server.url + "/health", timeout=5)  # nothing is served any more, not even on it


def test_request_bodies_are_capped(sample_bars: pd.DataFrame) -> None:
    import requests

    market = SimMarket(sample_bars.iloc[:5000], SimSettings())
    with ContractServer(market, api_key=DEV_TOKEN, max_body=1024) as server:
        auth = {"Authorization": f"Bearer {DEV_TOKEN}"}
        r = requests.post(server.url + "/order", data=b"{" + b" " * 2000 + b"}", headers=auth, timeout=5)
        assert r.status_code == 400 and "1024 bytes" in r.json()["error"]
        chunked = requests.post(server.url + "/order", data=iter([b"{", b" " * 2000, b"}"]), headers=auth, timeout=5)
        assert chunked.status_code == 400 and "1024 bytes" in chunked.json()["error"]
        assert server.stats.handled("POST", "/order") == 2
