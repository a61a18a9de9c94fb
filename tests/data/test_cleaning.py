"""DataCleaner rules, report, edge cases and causal mode on real bars and ticks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.cleaning import RULES, CleaningReport, DataCleaner
from engine.errors import ConfigError, DataQualityError

STRICT = dict(missing="drop", max_ffill=0, drop_zero_volume=True, zscore=30.0, iqr_k=10.0,
              contamination=0.002, window=240, if_window=600, if_refit=1200)


def test_default_keeps_real_clean_bars(week_bars: pd.DataFrame) -> None:
    cleaner = DataCleaner()
    out = cleaner.clean_ohlcv(week_bars)
    pd.testing.assert_frame_equal(out, week_bars)
    rep = cleaner.report_
    assert (rep.rows_in, rep.rows_out) == (len(week_bars), len(week_bars))
    assert set(rep.removed) == set(RULES) and sum(rep.removed.values()) == 0
    flat = rep.as_dict()
    assert flat["rows_in"] == len(week_bars) and flat["removed_zscore"] == 0.0
    assert all(isinstance(v, float) for v in flat.values())


def test_planted_faults_are_removed_and_counted(week_bars: pd.DataFrame) -> None:
    bars = week_bars.iloc[:3000].copy()
    t = bars.index
    bars.iloc[2000, bars.columns.get_loc("close")] = bars["close"].iloc[2000] * 10  # bad print, also OHLC-invalid
    bars.iloc[2100, :4] = bars.iloc[2100, :4] * 0.5  # consistent bar but a -50% print
    bars.iloc[2200, bars.columns.get_loc("high")] = bars["low"].iloc[2200] - 1  # high below low
    bars.iloc[2300, bars.columns.get_loc("volume")] = -1.0
    bars.iloc[2400:2402, bars.columns.get_loc("close")] = np.nan  # 2 NaN rows: forward-filled
    dup = bars.iloc[[2500]].copy()
    dup["close"] = dup["close"] + 1.0
    bars = pd.concat([bars, dup])  # a re-sent bar (unsorted, duplicate timestamp)
    cleaner = DataCleaner(max_ffill=3)
    out = cleaner.clean_ohlcv(bars)
    rep = cleaner.report_
    assert rep.removed["duplicates"] == 1 and rep.reordered == 1
    assert out.loc[t[2500], "close"] == pytest.approx(dup["close"].iloc[0])  # keep="last"
    assert rep.removed["invalid"] == 3  # x10 close above high, high < low, volume < 0
    assert rep.removed["zscore"] == 1 and t[2100] not in out.index
    assert rep.filled == 2 and out.loc[t[2401], "close"] == bars.loc[t[2399], "close"]
    assert rep.rows_out == len(out) == 3000 - 4 and out.index.is_monotonic_increasing
    assert out.index.is_unique


def test_missing_drop_and_long_runs(week_bars: pd.DataFrame) -> None:
    bars = week_bars.iloc[:500].copy()
    bars.iloc[100:110] = np.nan  # ten bars lost: the first three are carried forward, flat, volume 0
    c = DataCleaner(missing="ffill", max_ffill=3)
    out = c.clean_ohlcv(bars)
    assert c.report_.filled == 3 and c.report_.removed["missing"] == 7 and len(out) == 493
    filled = out.iloc[100:103]
    assert (filled["close"] == bars["close"].iloc[99]).all() and (filled["volume"] == 0).all()
    bars.iloc[200, 1] = np.nan  # a lone NaN high filled from the previous bar may make an impossible bar
    c.clean_ohlcv(bars)
    assert c.report_.filled == 4 and c.report_.removed["invalid"] == int(bars["high"].iloc[199] < bars.iloc[200][
        ["open", "close"]].max())
    c = DataCleaner(missing="drop")
    assert len(c.clean_ohlcv(bars)) == 489 and c.report_.removed["missing"] == 11


def test_outage_zero_volume_and_gap(outage_bars: pd.DataFrame) -> None:
    strict = DataCleaner(drop_zero_volume=True)
    out = strict.clean_ohlcv(outage_bars)
    assert strict.report_.removed["zero_volume"] == 72
    assert (out["volume"] > 0).all()
    day = out.loc["2023-03-24"]
    assert not ((day.index >= "2023-03-24 11:28") & (day.index < "2023-03-24 14:00")).any()
    kept = DataCleaner().clean_ohlcv(outage_bars)
    assert len(kept) == len(outage_bars)  # the default keeps real bars, gap and all


@pytest.mark.parametrize("params", [{}, STRICT], ids=["default", "strict"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_causal_truncation(outage_bars: pd.DataFrame, params: dict, data: st.DataObject) -> None:
    """Cleaning bars up to t keeps exactly the rows that cleaning all bars keeps up to t."""
    bars = outage_bars.copy()
    rng = np.random.default_rng(0)
    spikes = rng.choice(np.arange(300, len(bars)), 6, replace=False)
    bars.iloc[spikes, :4] = bars.iloc[spikes, :4] * 1.6  # consistent bars far off the path
    cleaner = DataCleaner(causal=True, **params)
    full = cleaner.clean_ohlcv(bars)
    assert cleaner.report_.rows_out < len(bars)
    t = bars.index[data.draw(st.integers(min_value=0, max_value=len(bars) - 2), label="t")]
    part = cleaner.clean_ohlcv(bars.loc[:t])
    pd.testing.assert_frame_equal(part, full.loc[:t])


def test_non_causal_mode_looks_ahead(week_bars: pd.DataFrame) -> None:
    """Centred windows see the future, so truncation may change verdicts: the reason causal is the default."""
    bars = week_bars.iloc[:2000].copy()
    bars.iloc[1000, :4] *= 1.02
    c = DataCleaner(causal=False, zscore=20.0, window=100)
    full = c.clean_ohlcv(bars)
    assert bars.index[1000] not in full.index
    assert c.report_.removed["zscore"] >= 1


def test_isolation_forest_is_seeded(week_bars: pd.DataFrame) -> None:
    bars = week_bars.iloc[:6000]
    params = dict(zscore=None, contamination=0.01, if_window=2000, if_refit=1000, random_state=3)
    a, b = DataCleaner(**params), DataCleaner(**params)
    out_a, out_b = a.clean_ohlcv(bars), b.clean_ohlcv(bars)
    pd.testing.assert_frame_equal(out_a, out_b)
    flagged = a.report_.removed["isolation_forest"]
    # Judged rows start after the first training window; regime shifts push the rate above 1%, not far.
    assert 0 < flagged < 0.05 * 4000
    assert out_a.index[:2000].equals(bars.index[:2000])
    other = DataCleaner(**(params | {"random_state": 4}))
    assert not other.clean_ohlcv(bars).index.equals(out_a.index)  # the seed matters


def test_edge_cases(week_bars: pd.DataFrame) -> None:
    c = DataCleaner()
    empty = c.clean_ohlcv(week_bars.iloc[:0])
    assert len(empty) == 0 and c.report_.rows_in == 0 and c.report_.as_dict()["removed_fraction"] == 0.0
    empty_range = c.clean_ohlcv(pd.DataFrame(columns=["open", "high", "low", "close", "volume"]))
    assert len(empty_range) == 0 and isinstance(empty_range.index, pd.DatetimeIndex)
    one = c.clean_ohlcv(week_bars.iloc[:1])
    pd.testing.assert_frame_equal(one, week_bars.iloc[:1])
    flat = week_bars.iloc[:3000].copy()
    flat[["open", "high", "low", "close"]] = 42_000.0
    assert len(DataCleaner(iqr_k=3.0, zscore=3.0).clean_ohlcv(flat)) == 3000  # constant: nothing is an outlier
    nan_col = week_bars.iloc[:50].copy()
    nan_col["volume"] = np.nan
    with pytest.raises(DataQualityError, match="entirely NaN"):
        c.clean_ohlcv(nan_col)
    naive = week_bars.iloc[:50].tz_localize(None)
    with pytest.raises(DataQualityError, match="timezone-naive"):
        c.clean_ohlcv(naive)
    out = DataCleaner(assume_utc=True).clean_ohlcv(naive)
    assert out.index.tz is not None and out.index.equals(week_bars.index[:50])
    shuffled = week_bars.iloc[:200].sample(frac=1.0, random_state=1)
    out = c.clean_ohlcv(shuffled)
    pd.testing.assert_frame_equal(out, week_bars.iloc[:200])
    assert c.report_.reordered > 0
    with_col = week_bars.iloc[:20].reset_index()
    pd.testing.assert_frame_equal(c.clean_ohlcv(with_col), week_bars.iloc[:20])
    with pytest.raises(DataQualityError, match="lack"):
        c.clean_ohlcv(week_bars.drop(columns="high"))


def test_off_and_bad_params(week_bars: pd.DataFrame) -> None:
    dirty = pd.concat([week_bars.iloc[:10], week_bars.iloc[[3]]])
    off = DataCleaner(enabled=False)
    pd.testing.assert_frame_equal(off.clean_ohlcv(dirty), dirty)
    assert off.report_ == CleaningReport(rows_in=11, rows_out=11)
    for bad in ({"missing": "zero"}, {"contamination": 0.9}, {"zscore": -1.0}, {"window": 0}):
        with pytest.raises(ConfigError):
            DataCleaner(**bad)


def read_quotes(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.set_index(pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="timestamp"))


def test_ticks_real_quotes_and_faults(shared_data_dir: Path) -> None:
    quotes = read_quotes(shared_data_dir / "btcusd_bitstamp_quotes_2015-05-01.csv")
    c = DataCleaner(window=200)
    out = c.clean_ticks(quotes)
    assert len(out) >= len(quotes) - 5  # real, uncrossed book: (almost) nothing to remove
    bad = quotes.copy()
    bad.iloc[1000, bad.columns.get_loc("bid")] = bad["ask"].iloc[1000] + 1  # crossed
    bad.iloc[1100, bad.columns.get_loc("ask")] = -1.0
    bad.iloc[1200, bad.columns.get_loc("ask")] = bad["ask"].iloc[1200] * 1.2  # spread blow-out
    bad = pd.concat([bad, bad.iloc[[1300]]])  # an exact duplicate tick
    out = c.clean_ticks(bad)
    rep = c.report_
    assert rep.removed["duplicates"] == 1 and rep.removed["invalid"] == 2 and rep.removed["spread"] >= 1
    assert not (out["bid"] > out["ask"]).any() and (out[["bid", "ask"]] > 0).all().all()


def test_ticks_causal(shared_data_dir: Path) -> None:
    quotes = read_quotes(shared_data_dir / "btcusdt_binance_quotes_2024-08-08T2354_to_2024-08-09T0005.csv")
    quotes = quotes.iloc[:20_000]
    c = DataCleaner(window=500)
    full = c.clean_ticks(quotes)
    for t in quotes.index[[2_000, 11_111, 19_000]]:
        pd.testing.assert_frame_equal(c.clean_ticks(quotes.loc[:t]), full.loc[:t])
