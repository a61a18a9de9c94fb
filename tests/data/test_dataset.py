"""The dataset builder every model task shares: samples, zero-copy inputs, embargoed splits, refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from engine import timeframes
from engine.data.cleaning import DataCleaner
from engine.data.dataset import DatasetBuilder, DatasetSettings, complete_bars, window_samples
from engine.data.features import FeatureEngineering
from engine.data.labels import LabelSpec
from engine.errors import ConfigError, DataQualityError

M1 = timeframes.parse("M1")
FEW = {"rsi": [14], "ema": [20], "sma": [], "macd": [], "bbands": [], "atr": [], "vwap": [], "vwap_day": False,
       "returns": [1, 5], "log_returns": [], "volatility": [30], "volume_ratio": [], "hl_range": False}


def _builder(*, bar_size: str | None = None, horizon: int = 5, embargo: int | None = None,
             seq_len: int | None = None, cleaner: DataCleaner | None = None) -> DatasetBuilder:
    tf = timeframes.parse(bar_size) if bar_size else M1
    return DatasetBuilder(timeframe=M1, features=FeatureEngineering([tf.pandas], **FEW),
                          labels=LabelSpec(horizon=horizon), cleaner=cleaner,
                          settings=DatasetSettings(bar_size=bar_size, embargo=embargo, seq_len=seq_len))


@pytest.mark.parametrize(("horizon", "asked", "expected"), [(5, None, 5), (7, 0, 7), (3, 2, 3), (4, 12, 12)])
def test_the_embargo_between_spans_is_never_below_the_label_horizon(sample_bars: pd.DataFrame, horizon: int,
                                                                      asked: int | None, expected: int) -> None:
    data = _builder(horizon=horizon, embargo=asked).build(sample_bars.iloc[:4000])
    train, val, test = data.splits
    assert data.embargo == expected
    # measured on the spans themselves, not on the number the builder reports
    assert val.start - train.stop == expected and test.start - val.stop == expected
    # the last training label reads closes up to horizon bars ahead: none of them may be a bar the first
    # validation sample is decided on or after (the same between validation and test)
    bar = pd.Timedelta(minutes=1)
    assert data.index[train.stop - 1] + horizon * bar < data.index[val.start]
    assert data.index[val.stop - 1] + horizon * bar < data.index[test.start]
    report = data.split_report()
    assert report["samples"] == {"train": [0, train.stop], "val": [val.start, val.stop],
                                 "test": [test.start, len(data.y)]}


def test_tabular_samples_are_aligned_views_of_the_feature_rows(sample_bars: pd.DataFrame) -> None:
    bars = sample_bars.iloc[:3000]
    builder = _builder(horizon=5)
    data = builder.build(bars, source="bundled sample")
    feats = FeatureEngineering(["1min"], **FEW).transform(bars)
    labels = LabelSpec(horizon=5).make(bars["close"])
    # the warm-up rows (NaN features) and the last `horizon` rows (no label) are not samples
    assert data.index[0] == feats.dropna().index[0] and data.index[-1] == bars.index[-1 - 5]
    assert list(data.X.columns) == data.feature_names == builder.features.feature_names_
    pd.testing.assert_frame_equal(data.X, feats.loc[data.index, data.feature_names])
    np.testing.assert_array_equal(data.y, labels.loc[data.index].to_numpy().astype("int64"))
    assert data.y.dtype == np.int64 and data.n_classes == 2 and data.horizon == 5
    assert data.source == "bundled sample" and data.timeframe == M1 and data.bar_seconds == 60
    test = data.splits.test
    assert np.shares_memory(data.take(test).to_numpy(), data.X.to_numpy())  # no copy per span
    prices = data.prices(test)
    assert prices.index.equals(data.index[test]) and list(prices.columns) == ["open", "close"]
    pd.testing.assert_frame_equal(prices, bars.loc[data.index[test], ["open", "close"]])


def test_sequence_samples_are_windows_ending_on_the_sample_bar(sample_bars: pd.DataFrame) -> None:
    bars = sample_bars.iloc[:3000]
    data = _builder(seq_len=16).build(bars)
    feats = FeatureEngineering(["1min"], **FEW).transform(bars).loc[:, data.feature_names]
    assert data.X.shape == (len(data.y), 16, len(data.feature_names)) and data.X.dtype == np.float32
    assert not data.X.flags.writeable and np.shares_memory(data.X[0], data.X[1])  # windows are views
    i = 100
    stamp = data.index[i]
    expected = feats.loc[:stamp].iloc[-16:].to_numpy(dtype="float32")
    np.testing.assert_array_equal(data.X[i], expected)  # the window ends on the bar the sample is decided at
    assert data.take(data.splits.val).shape[1:] == (16, len(data.feature_names))


def test_same_bars_and_recipe_give_the_same_dataset(sample_bars: pd.DataFrame) -> None:
    bars = sample_bars.iloc[:3000]
    first, second = _builder().build(bars), _builder().build(bars.copy())
    assert first.fingerprint == second.fingerprint and first.splits == second.splits
    assert first.index.equals(second.index)
    np.testing.assert_array_equal(first.y, second.y)
    changed = bars.copy()
    changed.iloc[10, changed.columns.get_loc("close")] += 1.0
    assert _builder().build(changed).fingerprint != first.fingerprint


def test_resampling_keeps_only_bars_whose_minutes_are_all_in(sample_bars: pd.DataFrame) -> None:
    m5 = timeframes.parse("M5")
    bars = sample_bars.iloc[:1002]  # 1002 minutes: the last 5-minute bar holds only 2 of its minutes
    out = complete_bars(bars, M1, m5)
    assert out.index[-1] == bars.index[995] and len(out) == 200
    assert out["close"].iloc[-1] == bars["close"].iloc[999]
    assert len(complete_bars(bars.iloc[:1000], M1, m5)) == 200  # ends on a boundary: nothing dropped
    data = _builder(bar_size="M5").build(bars)
    assert data.timeframe == m5 and data.bars.index[-1] == out.index[-1]
    assert data.clean_report == {}  # no cleaner given, no cleaning report


def test_a_cleaner_reports_what_it_did(sample_bars: pd.DataFrame) -> None:
    data = _builder(cleaner=DataCleaner(window=120)).build(sample_bars.iloc[:3000])
    assert data.clean_report["rows_in"] == 3000 and "removed_zscore" in data.clean_report


def test_progress_names_each_phase(sample_bars: pd.DataFrame) -> None:
    from contextlib import nullcontext

    seen: list[str] = []

    def progress(name: str):
        seen.append(name)
        return nullcontext()

    _builder(bar_size="M5", cleaner=DataCleaner(window=120)).build(sample_bars.iloc[:6000], progress=progress)
    assert seen == ["resample M1 -> M5", "clean", "features + labels"]


@pytest.mark.parametrize(("make", "key"), [
    (lambda: _builder(cleaner=DataCleaner(causal=False)), "cleaner.causal"),
    (lambda: DatasetBuilder(timeframe=timeframes.parse("M5"), features=FeatureEngineering(["1min"]),
                            labels=LabelSpec(), settings=DatasetSettings(bar_size="M1")), "task.bar_size"),
    (lambda: DatasetBuilder(timeframe=M1, features=FeatureEngineering(["1min", "5min"]), labels=LabelSpec(),
                            settings=DatasetSettings(bar_size="M5")), "features.timeframes"),
    (lambda: DatasetSettings(val_frac=0.45, test_frac=0.4), "task.test_frac"),
    (lambda: DatasetSettings(val_frac=0.0), "task.val_frac"),
    (lambda: DatasetSettings(embargo=-1), "task.embargo"),
    (lambda: DatasetSettings(bar_size="M7"), "task.bar_size"),
    (lambda: DatasetSettings(seq_len=0), "model.seq_len"),
])
def test_recipes_that_cannot_work_are_refused_before_any_bar(make, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert err.value.key == key


def test_a_disabled_non_causal_cleaner_is_allowed() -> None:
    _builder(cleaner=DataCleaner(enabled=False, causal=False))  # cleaner=off judges nothing


def test_spans_too_small_to_judge_are_refused(sample_bars: pd.DataFrame) -> None:
    with pytest.raises(DataQualityError, match="span holds"):
        _builder().build(sample_bars.iloc[:80])


def test_windows_skip_incomplete_rows_and_unlabelled_ends() -> None:
    n, seq = 20, 4
    idx = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    feats = pd.DataFrame({"a": np.arange(n, dtype="float64"), "b": np.arange(n, dtype="float64") * 10}, index=idx)
    feats.iloc[:2] = np.nan  # warm-up
    labels = (np.arange(n) % 2).astype("float64")
    labels[-3:] = np.nan  # horizon runs past the data
    complete, labelled = feats.notna().all(axis=1).to_numpy(), ~np.isnan(labels)

    X, y, index = window_samples(feats, complete, labelled, labels, seq)
    # first window: rows 2..5; last window ends on the last labelled row 16
    assert X.shape == (16 - 5 + 1, seq, 2)
    assert X[0, :, 0].tolist() == [2, 3, 4, 5] and X[-1, -1, 0] == 16
    assert index[0] == idx[5] and index[-1] == idx[16]
    np.testing.assert_array_equal(y, labels[5:17].astype("int64"))
    assert np.shares_memory(X[0], X[1])  # contiguous block: overlapping views, not a materialised copy

    feats.iloc[9] = np.nan  # a hole in the middle: no window may contain row 9
    complete = feats.notna().all(axis=1).to_numpy()
    X, y, index = window_samples(feats, complete, labelled, labels, seq)
    assert not np.isin(9.0, X[:, :, 0])
    assert idx[9] not in index and idx[12] not in index and idx[13] in index
    assert np.isfinite(X).all()


def test_the_builder_stays_pure() -> None:
    code = ("import sys, engine.data.dataset; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'hydra', 'omegaconf', 'rich', 'mlflow', "
            "'requests', 'psycopg2', 'dvc'}); print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""
