"""connector=simulator|mt5_rest and source=mt5 composed from the real conf/ and built."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from omegaconf import DictConfig

from engine.config.build import build
from engine.config.validate import validate
from engine.errors import ConfigError
from engine.mt5 import MT5RestClient
from engine.sources.base import BarSource
from engine.sources.csv import SAMPLE_PATH, CsvBarSource


def test_simulator_connector_builds_a_working_client(compose: Callable[[list[str]], DictConfig]) -> None:
    cfg = compose(["connector=simulator", "connector.start=2024-02-01T00:00Z", "connector.spread_points=200"])
    validate(cfg)
    client = build(cfg.connector, MT5RestClient, key="connector")
    try:
        assert client.base_url.startswith("http://127.0.0.1:")
        assert client.server_offset() == pd.Timedelta(hours=2)  # measured: not configured
        tick = client.latest_tick("BTCUSD")
        assert tick["time"] == pd.Timestamp("2024-02-01T00:00Z")
        assert tick["ask"] - tick["bid"] == pytest.approx(2.0)
    finally:
        client.close()


def test_source_mt5_fetches_the_same_bars_as_the_sample(compose: Callable[[list[str]], DictConfig]) -> None:
    cfg = compose(["source=mt5", "source.start=2024-03-10", "source.end=2024-03-12T06:00Z", "source.progress=false",
                   "connector.max_bars=1000"])
    validate(cfg)
    source = build(cfg.source, BarSource, key="source")
    try:
        bars = source.load_bars("BTCUSD", "M1")
    finally:
        source.connector.close()
    want = CsvBarSource(str(SAMPLE_PATH), start="2024-03-10", end="2024-03-12T06:00Z").load_bars("BTCUSD", "M1")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index.equals(want.index) and len(bars) == 2 * 1440 + 360
    pd.testing.assert_frame_equal(bars, want, check_index_type=False)


def test_source_mt5_without_end_stops_before_the_forming_bar(compose: Callable[[list[str]], DictConfig]) -> None:
    cfg = compose(["source=mt5", "source.start=2024-02-14T23:00Z", "source.end=null", "source.progress=false",
                   "connector.start=2024-02-15T00:30:00Z", "timeframe=M15"])
    source = build(cfg.source, BarSource, key="source")
    try:
        bars = source.load_bars("BTCUSD", "M15")
    finally:
        source.connector.close()
    assert bars.index[-1] == pd.Timestamp("2024-02-15T00:15Z")  # 00:30 is forming, not returned
    assert len(bars) == 6


@pytest.mark.parametrize(("overrides", "key"), [
    (["connector=mt5_rest"], "connector.base_url"),
    (["connector=mt5_rest", "connector.base_url=ftp://x"], "connector.base_url"),
    (["connector=mt5_rest", "connector.base_url=https://bridge.lan", "connector.verify_tls=false"],
     "connector.verify_tls"),
    (["connector=mt5_rest", "connector.base_url=https://bridge.lan", "connector.api_key=plain-text-key"],
     "connector.api_key"),
    (["connector=mt5_rest", "connector.base_url=https://bridge.lan", "connector.retries=99"], "connector.retries"),
    (["connector=mt5_rest", "connector.base_url=http://bridge.lan:8443"], "connector.base_url"),
    (["connector=mt5_rest", "connector.base_url=https://bridge.lan", "connector.dialect=flask"], "connector.dialect"),
    (["connector.drop_rate=1.5"], "connector.drop_rate"),
    (["source=mt5", "source.start=2024-03-02", "source.end=2024-03-01"], "source.end"),
    (["source=mt5", "~connector"], "source.connector"),
])
def test_bad_connector_config_names_the_key(compose: Callable[[list[str]], DictConfig], overrides: list[str],
                                            key: str) -> None:
    cfg = compose(overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.key == key
    assert "plain-text-key" not in str(info.value)


def test_plain_http_to_another_host_needs_an_explicit_opt_in(compose: Callable[[list[str]], DictConfig]) -> None:
    cfg = compose(["connector=mt5_rest", "connector.base_url=http://bridge.lan:8443",
                   "connector.allow_insecure_http=true", "connector.dialect=quant_server"])
    validate(cfg)  # allowed, explicitly
    assert cfg.connector.allow_insecure_http is True and cfg.connector.dialect == "quant_server"


def test_mt5_rest_keeps_the_key_a_reference_until_built(compose: Callable[[list[str]], DictConfig]) -> None:
    cfg = compose(["connector=mt5_rest", "connector.base_url=https://bridge.lan:8443"])
    validate(cfg)
    assert cfg.connector._get_node("api_key")._value() == "${secret:mt5_api_key}"
