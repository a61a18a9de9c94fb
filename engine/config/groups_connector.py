"""Schemas of the ``connector`` group (MT5 over REST: simulator, mt5_rest) and of ``source=mt5``.

Both connector options build an :class:`engine.connectors.mt5_rest.MT5RestClient`; ``simulator``
first starts the embedded simulator on 127.0.0.1 and points the client at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from omegaconf import MISSING, DictConfig, OmegaConf

from engine.errors import ConfigError
from engine.fields import bounded, choice

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


@dataclass
class MT5RestConnectorConfig(_ClientSettings):
    _target_: str = "engine.connectors.mt5_rest.MT5RestClient"
    base_url: str = MISSING
    api_key: str = "${secret:mt5_api_key}"
    max_bars: int = bounded(10_000, ge=1, le=1_000_000)
    verify_tls: bool = True
    ca_bundle: str | None = None

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        if OmegaConf.is_missing(node, "base_url"):
            raise ConfigError(_key(path, "base_url"), "set the bridge URL, e.g. connector.base_url="
                                                      "https://mt5-bridge.lan:8443")
        url = str(node.base_url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(_key(path, "base_url"), f"{url!r} is not an http(s) URL")
        if not node.verify_tls and parts.hostname not in _LOOPBACK:
            raise ConfigError(_key(path, "verify_tls"), "TLS verification may be off only for a loopback bridge; "
                                                        "give the bridge's CA certificate as connector.ca_bundle")
        raw = node._get_node("api_key")._value()
        if not OmegaConf.is_interpolation(node, "api_key") and raw not in (None, ""):
            # The value is not echoed: it may be the key itself.
            raise ConfigError(_key(path, "api_key"), "a literal API key in config is refused; store it with "
                                                     "`python -m engine.secrets` and write ${secret:mt5_api_key}")


@dataclass
class SimulatorConnectorConfig(_ClientSettings):
    _target_: str = "engine.connectors.simulator.embedded_client"
    bars_path: str | None = None
    ticks_path: str | None = None
    data_start: str | None = None
    data_end: str | None = None
    symbol: str = "BTCUSD"
    digits: int = bounded(2, ge=0, le=8)
    spread_points: int = bounded(1500, ge=0)
    slippage_points: int = bounded(0, ge=0)
    balance: float = bounded(10_000.0, gt=0.0)
    leverage: int = bounded(10, ge=1, le=1000)
    commission_per_lot: float = bounded(0.0, ge=0.0)
    server_offset_hours: float = bounded(2.0, ge=-12.0, le=14.0)
    # 0 = step mode (the replay moves when told to); 60 = one simulated minute per second.
    speed: float = bounded(0.0, ge=0.0)
    start: str | None = None
    step_on_poll: bool = False
    max_bars: int = bounded(10_000, ge=1, le=1_000_000)
    error_rate: float = bounded(0.0, ge=0.0, le=1.0)
    latency_ms: float = bounded(0.0, ge=0.0, le=30_000.0)
    drop_rate: float = bounded(0.0, ge=0.0, le=1.0)
    duplicate_tick_rate: float = bounded(0.0, ge=0.0, le=1.0)
    seed: int = bounded(42, ge=0)
    # A development token, not a secret: the simulator holds no money and listens on 127.0.0.1 only.
    api_key: str = "sim-dev-token"
    client_max_bars: int | None = bounded(None, ge=1, le=1_000_000)


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
