"""FeatureEngineering: names, values, higher-timeframe joins on completed bars, causality on real bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import indicators as ind
from engine.data.features import FeatureEngineering, resample_bars
from engine.errors import ConfigError, DataQualityError

talib = pytest.importorskip("talib")

MINIMAL = dict(timeframes=["1min"], rsi=[14], ema=[20], sma=[], macd=[], bbands=[], atr=[14], vwap=[],
               vwap_day=False, returns=[1, 5], log_returns=[], volatility=[30], volume_ratio=[], hl_range=False)
STANDARD: dict = dict(timeframes=["1min", "5min"])
FULL = dict(timeframes=["1min", "5min", "15min", "1h"], rsi=[7, 14, 28], ema=[9, 20, 50], sma=[20, 50],
            vwap=[30, 120], returns=[1, 5, 15, 60], log_returns=[1, 5], volatility=[15, 60],
            volume_ratio=[30, 120], levels="both")
SETS = {"minimal": MINIMAL, "standard": STANDARD, "full": FULL}


def test_conf_feature_sets_match_test_sets(compose) -> None:
    """The sets tested here for causality are the shipped conf/features options."""
    from engine.config.build import build

    for name, params in SETS.items():
        fe = build(compose([f"features={name}"]).features, FeatureEngineering, key="features")
        expected = FeatureEngineering(**params)
        for attr in ("timeframes", "rsi", "ema", "sma", "macd", "bbands", "atr", "vwap", "returns", "volatility"):
            assert getattr(fe, attr) == getattr(expected, attr), (name, attr)


def test_standard_names_and_no_raw_levels(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering(**STANDARD)
    X = fe.transform(week_bars)
    assert list(X.columns) == fe.feature_names_
    assert X.index.equals(week_bars.index)
    for col in ("rsi_14", "macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9", "ema_20_rel", "sma_20_rel",
                "bb_upper_20_2_rel", "bb_pctb_20_2", "bb_width_20_2", "atr_14", "vwap_60_rel", "vwap_day_rel",
                "ret_1", "ret_15", "logret_1", "volatility_30", "volume_ratio_60", "hl_range", "m5_rsi_14",
                "m5_macd_hist_12_26_9"):
        assert col in X.columns, col
    assert not set(X.columns) & {"open", "high", "low", "close", "volume", "ema_20"}
    tail = X.iloc[500:]
    assert tail.notna().all().all(), tail.columns[tail.isna().any()].tolist()
    assert np.isfinite(tail.to_numpy()).all()
    assert X["rsi_14"].iloc[:14].isna().all()


def test_values_equal_talib_and_definitions(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering(**FULL)
    X = fe.add_features(fe.add_indicators(week_bars))
    c, h, lo = (week_bars[k].to_numpy() for k in ("close", "high", "low"))
    np.testing.assert_allclose(X["rsi_28"], talib.RSI(c, 28), rtol=1e-6)
    np.testing.assert_allclose(X["ema_50"], talib.EMA(c, 50), rtol=1e-6)
    np.testing.assert_allclose(X["atr_14"], talib.ATR(h, lo, c, 14), rtol=1e-6)
    up, mid, low = talib.BBANDS(c, 20, 2, 2)
    np.testing.assert_allclose(X["bb_upper_20_2"], up, rtol=1e-6)
    np.testing.assert_allclose(X["bb_pctb_20_2"], (c - low) / (up - low), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(X["bb_width_20_2"], (up - low) / mid, rtol=1e-6)
    np.testing.assert_allclose(X["ema_20_rel"], talib.EMA(c, 20) / c - 1, rtol=1e-6, atol=1e-12)
    close = week_bars["close"]
    np.testing.assert_allclose(X["ret_15"], close.pct_change(15), rtol=1e-9)
    np.testing.assert_allclose(X["logret_5"], np.log(close).diff(5), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(X["volatility_60"], np.log(close).diff().rolling(60).std(), rtol=1e-7)
    vol = week_bars["volume"]
    np.testing.assert_allclose(X["volume_ratio_30"], vol / vol.rolling(30).mean(), rtol=1e-9)


def test_resample_matches_pandas(week_bars: pd.DataFrame) -> None:
    bars = week_bars.drop(week_bars.index[100:130])  # a gap inside a few 5m/15m bins
    for rule in ("5min", "15min", "1h"):
        ours = resample_bars(bars, rule)
        ref = bars.resample(rule, label="left", closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
        pd.testing.assert_frame_equal(ours, ref, check_freq=False, check_index_type=False, rtol=1e-12)


def test_higher_timeframe_joins_only_completed_bars(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering(**STANDARD)
    X = fe.transform(week_bars)
    five = resample_bars(week_bars, "5min")
    ref = talib.RSI(five["close"].to_numpy(), 14)
    ref = pd.Series(ref, index=five.index)
    ts = pd.Timestamp("2024-01-02 12:00", tz="UTC")
    # The 5m bar opening 12:00 closes at 12:05: first visible on the 1m bar opening 12:04.
    assert X.at[ts + pd.Timedelta("4min"), "m5_rsi_14"] == pytest.approx(ref[ts], rel=1e-9)
    for minute in range(4):
        row = ts + pd.Timedelta(minutes=minute)
        assert X.at[row, "m5_rsi_14"] == pytest.approx(ref[ts - pd.Timedelta("5min")], rel=1e-9)
    # multi_timeframe with explicit frames gives the same join.
    Y = fe.multi_timeframe({"1min": week_bars, "5min": five})
    pd.testing.assert_frame_equal(X, Y)


def _truncation_matches(fe: FeatureEngineering, bars: pd.DataFrame, cut: int) -> None:
    full = fe.transform(bars)
    part = fe.transform(bars.iloc[: cut + 1])
    pd.testing.assert_frame_equal(part, full.iloc[: cut + 1], rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", list(SETS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_causal_truncation(week_bars: pd.DataFrame, name: str, data: st.DataObject) -> None:
    """Computing on bars truncated at t gives the same rows up to t as computing on all bars."""
    fe = FeatureEngineering(**SETS[name])
    cut = data.draw(st.integers(min_value=1, max_value=len(week_bars) - 2), label="t")
    _truncation_matches(fe, week_bars.iloc[:6000], min(cut, 5998))


def test_causal_across_gaps(outage_bars: pd.DataFrame) -> None:
    """Truncating right before, inside and after the 2023-03-24 outage, and in partial 5m/1h bins."""
    fe = FeatureEngineering(**FULL)
    idx = outage_bars.index
    gap_end = int(np.flatnonzero(np.diff(idx.as_unit("ns").asi8) > 60 * 10**9)[0])
    for cut in (gap_end - 1, gap_end, gap_end + 1, gap_end + 3, len(idx) - 2):
        _truncation_matches(fe, outage_bars, cut)


def test_future_change_leaves_past_rows(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering(**FULL)
    changed = week_bars.copy()
    changed.iloc[5000:, :4] *= 1.5  # a huge jump after row 4999
    a, b = fe.transform(week_bars), fe.transform(changed)
    pd.testing.assert_frame_equal(a.iloc[:5000], b.iloc[:5000])
    assert a["ret_1"].iloc[5000] != pytest.approx(b["ret_1"].iloc[5000])  # the change does show from t on


def test_bad_input_is_refused(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering()
    holed = week_bars.copy()
    holed.iloc[10, 3] = np.nan
    with pytest.raises(DataQualityError, match="DataCleaner"):
        fe.transform(holed)
    with pytest.raises(DataQualityError, match="lack"):
        fe.transform(week_bars.drop(columns="volume"))
    with pytest.raises(DataQualityError, match="base timeframe"):
        FeatureEngineering(["5min"]).transform(week_bars)  # 1m bars declared as 5m would leak
    with pytest.raises(ConfigError):
        FeatureEngineering(["5min", "1min"])
    with pytest.raises(ConfigError):
        FeatureEngineering(["1min", "7min"])
    with pytest.raises(ConfigError):
        FeatureEngineering(macd=[12, 26])


def test_empty_and_tiny_frames(week_bars: pd.DataFrame) -> None:
    fe = FeatureEngineering(**FULL)
    empty = fe.transform(week_bars.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == fe.feature_names_
    one = fe.transform(week_bars.iloc[:1])
    assert len(one) == 1 and one.drop(columns=["hl_range", "volume_ratio_30"], errors="ignore").iloc[0].isna().sum() > 0


def test_raw_levels_when_configured(week_bars: pd.DataFrame) -> None:
    X = FeatureEngineering(timeframes=["1min"], levels="raw").transform(week_bars)
    c = week_bars["close"].to_numpy()
    np.testing.assert_allclose(X["ema_20"], ind.ema(c, 20))
    assert "ema_20_rel" not in X.columns


def test_truncation_check_catches_a_leak(week_bars: pd.DataFrame) -> None:
    """Negative control: the causality check fails for a feature that peeks one bar ahead."""

    class Leaky(FeatureEngineering):
        def transform(self, bars: pd.DataFrame) -> pd.DataFrame:
            out = super().transform(bars)
            out["peek"] = np.r_[bars["close"].to_numpy()[1:], np.nan]
            return out

    with pytest.raises(AssertionError):
        _truncation_matches(Leaky(**MINIMAL), week_bars.iloc[:2000], 1000)


def test_bundled_sample_pipeline_is_causal_and_exact(sample_bars: pd.DataFrame) -> None:
    """Runs without ../shared/data: clean -> standard features on the bundled sample."""
    from engine.data.cleaning import DataCleaner

    bars = DataCleaner().clean_ohlcv(sample_bars)
    fe = FeatureEngineering(**STANDARD)
    X = fe.transform(bars)
    c = bars["close"].to_numpy()
    np.testing.assert_allclose(X["rsi_14"], talib.RSI(c, 14), rtol=1e-6)
    np.testing.assert_allclose(X["m5_rsi_14"].iloc[-1], talib.RSI(resample_bars(bars, "5min")["close"].to_numpy(),
                                                                    14)[-1], rtol=1e-9)
    for cut in (777, 12_345, len(bars) - 3):
        _truncation_matches(fe, bars, cut)
