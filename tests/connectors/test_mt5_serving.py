"""The simulator as a command and the contract server over TLS (real sockets on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from engine.connectors.mt5_rest import MT5RestClient
from engine.connectors.server import ContractServer
from engine.connectors.sim_market import SimMarket, SimSettings
from engine.connectors.simulator import DEV_TOKEN
from engine.errors import OperationalError

REPO = Path(__file__).resolve().parents[2]


def test_simulator_command_serves_and_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MT5_API_KEY"} | {"MT5_API_KEY": "cli-token-123456"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.connectors.simulator", "--port", "0", "--start",
                             "2024-02-01T00:00Z", "--spread-points", "700"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        client = MT5RestClient(url.group(0), "cli-token-123456", read_timeout=10)
        tick = client.latest_tick("BTCUSD")
        assert tick["time"] == pd.Timestamp("2024-02-01T00:00Z") and tick["ask"] - tick["bid"] == pytest.approx(7.0)
        r = requests.get(url.group(0) + "/account_info", headers={"Authorization": f"Bearer {DEV_TOKEN}"}, timeout=5)
        assert r.status_code == 401  # the env token replaced the dev token
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]


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
