"""MT5RestClient reads against the simulator over real HTTP on 127.0.0.1: bars in chunks, server time,
the forming bar, higher timeframes, real quotes as ticks, typed errors for bad input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
import requests

from engine.errors import InvalidRequestError
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.data import read_quotes
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from tests.mt5.conftest import REPLAY_START

PRICES = ["open", "high", "low", "close"]


def test_bars_range_in_chunks_equals_the_real_data(make_simulator: Callable[..., Simulator],
                                                   make_client: Callable[..., MT5RestClient],
                                                   sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, max_bars=500))
    client = make_client(sim.url, max_bars=500, server_time_offset_hours=2)
    start, end = pd.Timestamp("2024-02-01T03:17Z"), pd.Timestamp("2024-02-02T05:00Z")
    got = client.bars_range("BTCUSD", "M1", start, end)
    want = sample_bars.loc[(sample_bars.index >= start) & (sample_bars.index < end)]
    assert len(got) == len(want) == int((end - start) / pd.Timedelta(minutes=1))
    assert got.index.equals(want.index)  # UTC, chunk seams without gaps or duplicates
    assert str(got.index.tz) == "UTC" and got.index.name == "timestamp"
    pd.testing.assert_frame_equal(got[PRICES], want[PRICES])
    assert (got["real_volume"].to_numpy() == want["volume"].to_numpy()).all()


def test_measured_offset_matches_the_server_and_gives_the_same_bars(client: MT5RestClient,
                                                                    make_client: Callable[..., MT5RestClient]) -> None:
    assert client.server_offset() == pd.Timedelta(hours=2)
    configured = make_client(client.base_url, server_time_offset_hours=2.0)
    a = client.bars_range("BTCUSD", "M15", "2024-02-10", "2024-02-11")
    b = configured.bars_range("BTCUSD", "M15", "2024-02-10", "2024-02-11")
    pd.testing.assert_frame_equal(a, b)
    assert a.index[0] == pd.Timestamp("2024-02-10T00:00Z") and len(a) == 96


def test_wrong_offset_shifts_bars_so_the_offset_matters(make_client: Callable[..., MT5RestClient],
                                                        simulator: Simulator, sample_bars: pd.DataFrame) -> None:
    wrong = make_client(simulator.url, server_time_offset_hours=0)
    got = wrong.bars_range("BTCUSD", "M1", "2024-02-10T00:00Z", "2024-02-10T01:00Z")
    assert got.index[0] == pd.Timestamp("2024-02-10T00:00Z")
    # Read with offset 0, the bar stamped 00:00 server time is really 22:00 UTC the day before.
    assert got["open"].iloc[0] == sample_bars.loc["2024-02-09T22:00Z", "open"]


def test_latest_bars_end_with_the_forming_bar_and_never_leak_the_future(client: MT5RestClient,
                                                                        sample_bars: pd.DataFrame) -> None:
    bars = client.bars("BTCUSD", "M1", 30)
    now = pd.Timestamp(REPLAY_START)
    assert bars.index[-1] == now
    forming = bars.iloc[-1]
    assert forming["open"] == forming["high"] == forming["low"] == forming["close"] == sample_bars.loc[now, "open"]
    pd.testing.assert_frame_equal(bars[PRICES].iloc[:-1], sample_bars.loc[bars.index[:-1], PRICES])
    ahead = client.bars_range("BTCUSD", "M1", now, now + pd.Timedelta(hours=3))
    assert list(ahead.index) == [now]


def test_higher_timeframe_forming_bar_uses_only_the_past(make_simulator: Callable[..., Simulator],
                                                         make_client: Callable[..., MT5RestClient],
                                                         sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(settings=SimSettings(start="2024-02-15T12:37:00Z"))
    bars = make_client(sim.url).bars("BTCUSD", "H1", 3)
    assert bars.index[-1] == pd.Timestamp("2024-02-15T12:00Z")
    past = sample_bars.loc["2024-02-15T12:00Z":"2024-02-15T12:36Z"]
    assert bars["high"].iloc[-1] == max(past["high"].max(), sample_bars.loc["2024-02-15T12:37Z", "open"])
    assert bars["close"].iloc[-1] == sample_bars.loc["2024-02-15T12:37Z", "open"]
    full = sample_bars.loc["2024-02-15T11:00Z":"2024-02-15T11:59Z"]
    assert bars["high"].iloc[-2] == full["high"].max() and bars["low"].iloc[-2] == full["low"].min()


def test_ticks_from_real_quotes_and_duplicate_ticks_dropped(make_simulator: Callable[..., Simulator],
                                                            make_client: Callable[..., MT5RestClient],
                                                            shared_data_dir: Any) -> None:
    quotes = read_quotes(shared_data_dir / "btcusdt_binance_quotes_2024-08-08T2354_to_2024-08-09T0005.csv")
    settings = SimSettings(start="2024-08-09T00:05:00Z")
    clean = make_client(make_simulator(None, ticks=quotes, settings=settings).url)
    dup_sim = make_simulator(None, ticks=quotes, settings=replace(settings, duplicate_tick_rate=0.3))
    dupes = make_client(dup_sim.url)
    start, end = "2024-08-09T00:00:00Z", "2024-08-09T00:01:00Z"
    got = clean.ticks_range("BTCUSD", start, end)
    window = quotes.loc[(quotes.index >= start) & (quotes.index < end)]
    # MT5 ticks carry milliseconds; identical updates within one millisecond collapse to one tick.
    ms = window.set_axis(window.index.floor("ms")).reset_index()
    window = window.loc[~ms.duplicated().to_numpy()]
    assert len(got) == len(window) > 1000
    assert (got["bid"].to_numpy() == window["bid"].to_numpy()).all()
    assert (got["ask"].to_numpy() == window["ask"].to_numpy()).all()
    raw = requests.get(dup_sim.url + "/fetch_ticks_range", headers={"Authorization": f"Bearer {DEV_TOKEN}"},
                       params={"symbol": "BTCUSD", "start": "2024-08-09T02:00:00", "end": "2024-08-09T02:01:00"},
                       timeout=10).json()
    assert len(raw) > len(window)  # the fault really duplicated ticks on the wire
    pd.testing.assert_frame_equal(dupes.ticks_range("BTCUSD", start, end), got)
    tick = clean.latest_tick("BTCUSD")
    assert tick["time"] <= pd.Timestamp("2024-08-09T00:05:00Z") and tick["ask"] > tick["bid"]


@pytest.mark.parametrize(("call", "error", "needle"), [
    (lambda cl: cl.bars_range("BTCUSD", "M1", "2024-02-02", "2024-02-01"), InvalidRequestError, "before"),
    (lambda cl: cl.bars_range("BTCUSD", "M7", "2024-02-01", "2024-02-02"), InvalidRequestError, "timeframe"),
    (lambda cl: cl.bars_range("BTCUSD", "M1", "not a date", "2024-02-02"), InvalidRequestError, "not a time"),
    (lambda cl: cl.bars("NOPE", "M1", 5), InvalidRequestError, "NOPE"),
    (lambda cl: cl.symbol_info("NOPE"), InvalidRequestError, "unknown symbol"),
])
def test_bad_input_gets_a_typed_error(client: MT5RestClient, call: Callable[[MT5RestClient], Any],
                                      error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        call(client)
    assert client.positions().empty
