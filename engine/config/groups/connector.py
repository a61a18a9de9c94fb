"""Schemas of the ``connector`` group (MT5 over REST: simulator, mt5_rest) and of ``source=mt5``.

Both connector options build an :class:`engine.mt5.client.MT5RestClient`; ``simulator`` first starts the
embedded simulator on 127.0.0.1 and points the client at it. The simulator's schema is generated from
:class:`engine.mt5.sim.SimSettings` (one settings object for config, embedded client and command line)
plus the client's settings below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from omegaconf import MISSING, DictConfig, OmegaConf

from engine.config.derive import schema_from
from engine.errors import ConfigError
from engine.fields import bounded, choice
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@dataclass
class _ClientSettings:
    connect_timeout: float = bounded(3.0, gt=0.0, le=120.0)
    read_timeout: float = bounded(30.0, gt=0.0, le=600.0)
    # Retries apply to idempotent GETs only; orders are reconciled, never blindly resent.
    retries: int = bounded(3, ge=0, le=10)
    backoff_base: float = bounded(0.2, ge=0.0, le=60.0)
    backoff_cap: float = bounded(5.0, ge=0.0, le=600.0)
    max_retry_after: float = bounded(30.0, ge=0.0, le=600.0)
    order_retries: int = bounded(2, ge=0, le=5)
    # Broker server time minus UTC in hours; null measures it from the latest tick.
    server_time_offset_hours: float | None = bounded(None, ge=-12.0, le=14.0)
    # Every request, with its retries, ends within this many seconds whatever the server does.
    deadline: float = bounded(60.0, gt=0.0, le=3600.0)
    # Answers larger than this are refused as they stream in (a wrong URL or proxy can stream forever).
    max_response_bytes: int = bounded(256 * 1024 * 1024, ge=1024)


@dataclass
class MT5RestConnectorConfig(_ClientSettings):
    _target_: str = "engine.mt5.client.MT5RestClient"
    base_url: str = MISSING
    api_key: str = "${secret:mt5_api_key}"
    max_bars: int = bounded(10_000, ge=1, le=1_000_000)
    verify_tls: bool = True
    ca_bundle: str | None = None
    # Plain http:// to a non-loopback host sends the key and orders in clear text: refused unless true.
    allow_insecure_http: bool = False
    # engine (python -m engine.mt5.bridge) or quant_server (metatrader5-quant-server-python); null detects it.
    dialect: str | None = choice(None, (None, "engine", "quant_server"))

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        if OmegaConf.is_missing(node, "base_url"):
            raise ConfigError(_key(path, "base_url"), "set the bridge URL, e.g. connector.base_url="
                                                      "https://mt5-bridge.lan:8443")
        url = str(node.base_url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(_key(path, "base_url"), f"{url!r} is not an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK and not node.allow_insecure_http:
            raise ConfigError(_key(path, "base_url"), f"plain http to {parts.hostname} sends the API key and orders "
                                                      "unencrypted; use https, or set "
                                                      "connector.allow_insecure_http=true on a network you trust")
        if not node.verify_tls and parts.hostname not in _LOOPBACK:
            raise ConfigError(_key(path, "verify_tls"), "TLS verification may be off only for a loopback bridge; "
                                                        "give the bridge's CA certificate as connector.ca_bundle")
        raw = node._get_node("api_key")._value()
        if not OmegaConf.is_interpolation(node, "api_key") and raw not in (None, ""):
            # The value is not echoed: it may be the key itself.
            raise ConfigError(_key(path, "api_key"), "a literal API key in config is refused; store it with "
                                                     "`python -m engine.secrets` and write ${secret:mt5_api_key}")


@dataclass
class _SimulatorClientSettings(_ClientSettings):
    # A development token, not a secret: the simulator holds no money and listens on 127.0.0.1 only.
    api_key: str = DEV_TOKEN
    client_max_bars: int | None = bounded(None, ge=1, le=1_000_000)


def _check_simulator(node: DictConfig, path: str) -> None:
    """SimSettings' own cross-field rules (e.g. volume_min <= volume_max), before any work."""
    names = [f.name for f in dataclasses.fields(SimSettings) if f.name in node]
    try:
        SimSettings(**{name: node[name] for name in names})
    except ConfigError as exc:
        raise ConfigError(_key(path, exc.key), exc.problem) from None


SimulatorConnectorConfig = schema_from(SimSettings, target="engine.mt5.sim.embedded.embedded_client",
                                       name="SimulatorConnectorConfig", extra=_SimulatorClientSettings,
                                       check=_check_simulator)


@dataclass
class MT5SourceConfig:
    _target_: str = "engine.sources.mt5.MT5BarSource"
    connector: Any = "${connector}"
    # UTC; end null = up to the last closed bar.
    start: str = MISSING
    end: str | None = None
    volume: str = choice("real", ("real", "tick"))
    progress: bool = True

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        import pandas as pd

        if OmegaConf.is_missing(node, "start"):
            raise ConfigError(_key(path, "start"), "source=mt5 needs a UTC start time, e.g. source.start=2024-03-01")
        if node.get("connector") is None:
            raise ConfigError(_key(path, "connector"), "source=mt5 needs a connector: add connector=simulator "
                                                       "or connector=mt5_rest")
        try:
            start = pd.Timestamp(str(node.start))
            end = None if node.end is None else pd.Timestamp(str(node.end))
        except ValueError as exc:
            raise ConfigError(_key(path, "start"), f"unreadable time ({exc}); use ISO 8601 such as "
                                                   "2024-03-01T00:00Z") from None
        start = start.tz_localize("UTC") if start.tz is None else start
        if end is not None:
            end = end.tz_localize("UTC") if end.tz is None else end
            if start >= end:
                raise ConfigError(_key(path, "end"), f"end {node.end} must be after start {node.start}")


SCHEMAS: dict[str, dict[str, type]] = {
    "connector": {"simulator": SimulatorConnectorConfig, "mt5_rest": MT5RestConnectorConfig},
    "source": {"mt5": MT5SourceConfig},
}
