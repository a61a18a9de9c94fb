"""Incremental features equal the batch features for the same bars: the live model sees what it was trained on.

The batch runs over the warm-up plus every later bar; the incremental state is built from the warm-up and then
takes the later bars one at a time. Recursions (EMA, RSI, MACD, ATR) and everything derived bar by bar are
the same floats; rolling sums and moments agree to the batch's own rounding (it keeps running sums between
re-summing blocks, the state re-sums every window).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.dataset import complete_bars, window_samples
from engine.data.features import FeatureEngineering
from engine.data.incremental import IncrementalFeatures, feature_names, warmup_bars
from engine.errors import DataQualityError
from engine.timeframes import parse

# Rolling sums/moments: the batch's running sums drift from a fresh sum by rounding (~1e-9 relative of a
# value near 1e-3 for the VWAP-to-close ratios); everything else must match to the last bits.
ROLLING = ("vwap", "sma_", "bb_", "volume_ratio", "volatility")

FULL = {"timeframes": ["1min", "5min", "15min", "1h"], "rsi": [7, 14, 28], "ema": [9, 20, 50], "sma": [20, 50],
        "bbands": [20], "atr": [14], "vwap": [30, 120], "returns": [1, 5, 15, 60], "log_returns": [1, 5],
        "volatility": [15, 60], "volume_ratio": [30, 120], "levels": "both"}


def _replayed(features: FeatureEngineering, bars: pd.DataFrame, warm: int, seq_len: int | None = None
              ) -> tuple[IncrementalFeatures, np.ndarray]:
    state = IncrementalFeatures(features, bars.iloc[:warm], seq_len=seq_len)
    rows = [state.update(ts, bar) for ts, bar in zip(bars.index[warm:], bars.iloc[warm:].to_dict("records"),
                                                        strict=True)]
    return state, np.array(rows)


def _assert_equal_to_batch(features: FeatureEngineering, bars: pd.DataFrame, warm: int) -> None:
    state, got = _replayed(features, bars, warm)
    batch = features.transform(bars)
    assert state.names == list(batch.columns) == feature_names(features)
    want = batch.to_numpy()[warm:]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="warm-up NaNs differ from the batch's")
    for j, name in enumerate(state.names):
        if any(part in name for part in ROLLING):
            np.testing.assert_allclose(got[:, j], want[:, j], rtol=2e-6, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(got[:, j], want[:, j], err_msg=name)


@pytest.mark.parametrize("settings", [
    pytest.param({"timeframes": ["1min", "5min", "15min"]}, id="standard-1m-5m-15m"),
    pytest.param(FULL, id="full-levels-both"),
    pytest.param({"timeframes": ["1min"], "levels": "raw", "macd": [26, 12, 9]}, id="raw-levels-swapped-macd"),
])
def test_equal_to_batch_over_thousands_of_bars(sample_bars: pd.DataFrame, settings: dict) -> None:
    bars = sample_bars.loc["2024-02-05":"2024-02-09"]  # 7,200 real 1m bars across several UTC days
    features = FeatureEngineering(**settings)
    _assert_equal_to_batch(features, bars, warm=1_500)


def test_equal_to_batch_on_resampled_bars_with_hourly_joins(sample_bars: pd.DataFrame) -> None:
    bars = complete_bars(sample_bars.loc["2024-01-10":"2024-02-10"], parse("M1"), parse("M5"))
    features = FeatureEngineering(timeframes=["5min", "15min", "1h"])  # the lstm_5m experiment's set
    _assert_equal_to_batch(features, bars, warm=2_000)


def test_equal_to_batch_across_missing_bars(sample_bars: pd.DataFrame) -> None:
    """Gaps, including the last minute of 5- and 15-minute bins: the higher bar then closes when the next bar
    of a later bin arrives, exactly where the batch joins it."""
    bars = sample_bars.loc["2024-02-05":"2024-02-06"]
    rng = np.random.default_rng(3)
    drop = rng.choice(np.arange(1_000, len(bars)), size=200, replace=False)
    ends = np.flatnonzero(bars.index.minute % 15 == 14)
    drop = np.union1d(drop, ends[ends > 1_000][:10])  # bins whose closing minute never comes
    bars = bars.drop(bars.index[drop])
    _assert_equal_to_batch(FeatureEngineering(timeframes=["1min", "5min", "15min"]), bars, warm=800)


def test_sequence_windows_equal_the_datasets(sample_bars: pd.DataFrame) -> None:
    bars = sample_bars.loc["2024-02-05":"2024-02-06"]
    features = FeatureEngineering(timeframes=["1min", "5min"])
    seq_len, warm = 16, 600
    state = IncrementalFeatures(features, bars.iloc[:warm], seq_len=seq_len)
    feats = features.transform(bars)
    complete = feats.notna().all(axis=1).to_numpy()
    windows, _, index = window_samples(feats, complete, np.ones(len(feats), bool), np.zeros(len(feats)), seq_len)
    by_time = dict(zip(index, windows, strict=True))
    for ts, bar in zip(bars.index[warm:warm + 300], bars.iloc[warm:warm + 300].to_dict("records"), strict=True):
        state.update(ts, bar)
        x = state.model_input()
        assert x is not None and x.shape == (1, seq_len, len(state.names)) and x.dtype == np.float32
        np.testing.assert_allclose(x[0], by_time[ts], rtol=1e-6, atol=1e-7)


def test_no_model_input_until_every_feature_is_known(sample_bars: pd.DataFrame) -> None:
    features = FeatureEngineering(timeframes=["1min", "5min"])
    bars = sample_bars.iloc[:600]
    state = IncrementalFeatures(features, bars.iloc[:5])
    assert state.model_input() is None
    inputs = [state.update(ts, bar) is not None and state.model_input() is not None
              for ts, bar in zip(bars.index[5:], bars.iloc[5:].to_dict("records"), strict=True)]
    first = inputs.index(True)
    complete = features.transform(bars).notna().all(axis=1).to_numpy()[5:]
    assert first == int(np.argmax(complete)) and all(inputs[first:])


def test_a_bar_out_of_order_or_impossible_is_refused(sample_bars: pd.DataFrame) -> None:
    features = FeatureEngineering(timeframes=["1min"])
    state = IncrementalFeatures(features, sample_bars.iloc[:100])
    last = sample_bars.index[99]
    bar = sample_bars.iloc[100].to_dict()
    with pytest.raises(DataQualityError, match="not at least one M1 bar after"):
        state.update(last, bar)
    with pytest.raises(DataQualityError, match="not a valid bar"):
        state.update(sample_bars.index[100], bar | {"high": bar["low"] - 1.0})
    state.update(sample_bars.index[100], bar)  # the refusals left the state as it was


def test_warmup_covers_every_family_and_the_window() -> None:
    features = FeatureEngineering(timeframes=["5min", "15min", "1h"])
    # the 1h MACD needs 34 hourly bars (408 5m bars); its EMAs settle over five times the slowest period
    assert warmup_bars(features) >= 5 * 26 * 12
    assert warmup_bars(features, seq_len=32) == warmup_bars(features) + 31
