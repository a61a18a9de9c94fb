"""Both stores refuse a batch holding impossible values, name the first bad rows, and store none of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataQualityError
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient
from engine.storage.validate import bar_problems, check_bars, check_ticks, tick_problems


def good_bars(n: int = 12) -> pd.DataFrame:
    index = pd.date_range("2024-05-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    close = 60_000 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close - 1, "high": close + 2, "low": close - 3, "close": close,
                         "volume": np.full(n, 1.5)}, index=index)


def good_ticks(n: int = 12) -> pd.DataFrame:
    index = pd.date_range("2024-05-01", periods=n, freq="250ms", tz="UTC", name="timestamp")
    bid = 60_000 + np.arange(n, dtype=float)
    return pd.DataFrame({"bid": bid, "ask": bid + 0.5, "volume": np.full(n, 0.1)}, index=index)


def bad_bars() -> tuple[pd.DataFrame, dict[int, str]]:
    """Eight bars, each broken in its own way, among four good ones; {position: reason expected}."""
    bars = good_bars().astype(object)
    cases = {
        1: ("open", np.nan, "open is not finite"),
        2: ("close", np.inf, "close is not finite"),
        3: ("low", -5.0, "low <= 0"),
        4: ("volume", -1.0, "volume < 0"),
        5: ("high", 1.0, "high < low"),
        6: ("open", 70_000.0, "open outside [low, high]"),
        8: ("close", 50_000.0, "close outside [low, high]"),
        10: ("high", "n/a", "high is not a number"),
    }
    for pos, (col, value, _) in cases.items():
        bars.iloc[pos, bars.columns.get_loc(col)] = value
    return bars, {pos: why for pos, (_, _, why) in cases.items()}


def bad_ticks() -> tuple[pd.DataFrame, dict[int, str]]:
    ticks = good_ticks().astype(object)
    cases = {0: ("bid", 0.0, "bid <= 0"), 3: ("ask", 59_000.0, "ask < bid"), 4: ("ask", np.nan, "ask is not finite"),
             7: ("volume", -0.5, "volume < 0"), 9: ("bid", "abc", "bid is not a number")}
    for pos, (col, value, _) in cases.items():
        ticks.iloc[pos, ticks.columns.get_loc(col)] = value
    return ticks, {pos: why for pos, (_, _, why) in cases.items()}


def test_every_impossible_value_is_named_with_its_row() -> None:
    bars, expected = bad_bars()
    with pytest.raises(DataQualityError) as err:
        check_bars(bars)
    message = str(err.value)
    assert message.startswith("8 of 12 bars hold impossible values; nothing of this batch was written")
    for pos in sorted(expected)[:5]:  # the first five bad rows are quoted with their reasons
        assert f"row {pos} at {bars.index[pos].isoformat()}: " in message and expected[pos] in message
    assert "row 0 " not in message and "row 7 " not in message  # good rows are not accused
    numeric = bars.apply(pd.to_numeric, errors="coerce")
    found = bar_problems(numeric)
    for pos, why in expected.items():
        if pos != 10:  # text became NaN here; check_bars reports it under its own name
            assert why in found[pos]
    assert set(found) == set(expected)

    ticks, expected_ticks = bad_ticks()
    with pytest.raises(DataQualityError, match="5 of 12 ticks") as err:
        check_ticks(ticks)
    assert all(why in str(err.value) for why in expected_ticks.values())
    assert set(tick_problems(ticks.apply(pd.to_numeric, errors="coerce"))) == set(expected_ticks)


def test_naive_timestamps_are_refused() -> None:
    naive = good_bars()
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(DataQualityError, match="timezone-naive"):
        check_bars(naive)
    ticks = good_ticks()
    ticks.index = ticks.index.tz_localize(None)
    with pytest.raises(DataQualityError, match="timezone-naive"):
        check_ticks(ticks)


def test_good_values_pass_untouched() -> None:
    bars, ticks = good_bars(), good_ticks()
    pd.testing.assert_frame_equal(check_bars(bars), bars)
    pd.testing.assert_frame_equal(check_ticks(ticks), ticks)
    as_text = bars.astype(str)  # numbers written as text are numbers
    pd.testing.assert_frame_equal(check_bars(as_text), bars)


def test_parquet_stores_nothing_of_a_bad_batch(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    bars, _ = bad_bars()
    ticks, _ = bad_ticks()
    with pytest.raises(DataQualityError, match="nothing of this batch was written"):
        store.write_bars(bars, "BTCUSD", "M1")
    with pytest.raises(DataQualityError, match="nothing of this batch was written"):
        store.write_ticks(ticks, "BTCUSD")
    assert store.read_bars("BTCUSD", "M1").empty and store.read_ticks("BTCUSD").empty
    assert not list(tmp_path.rglob("*.parquet"))


def test_database_stores_nothing_of_a_bad_batch(db_client: TimescaleDBClient) -> None:
    bars, _ = bad_bars()
    ticks, _ = bad_ticks()
    with pytest.raises(DataQualityError, match="8 of 12 bars"):
        db_client.insert_ohlcv(bars, "BTCUSD", "M1")
    with pytest.raises(DataQualityError, match="5 of 12 ticks"):
        db_client.insert_ticks(ticks, "BTCUSD")
    records = [{"symbol": "ETHUSD", "timestamp": "2024-05-01T00:00:00Z", "bid": 3000.0, "ask": 3000.5},
               {"symbol": "BTCUSD", "timestamp": "2024-05-01T00:00:00Z", "bid": 60000.0, "ask": 59000.0}]
    with pytest.raises(DataQualityError, match="ask < bid"):  # one bad symbol stops the other's rows too
        db_client.insert_ticks(records)
    with db_client._tx() as cur:
        cur.execute("SELECT (SELECT count(*) FROM ohlcv), (SELECT count(*) FROM ticks)")
        assert cur.fetchone() == (0, 0)
