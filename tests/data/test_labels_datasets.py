"""Forward-return labels, chronological splits with embargo, purged folds and zero-copy windows."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.data.datasets import chronological_split, purged_time_folds, sequence_windows, window_targets
from engine.data.labels import LabelSpec, forward_return_labels
from engine.errors import ConfigError, DataQualityError


def test_binary_and_ternary_labels(week_bars: pd.DataFrame) -> None:
    close = week_bars["close"].iloc[:500]
    h = 5
    fwd = close.shift(-h) / close - 1
    binary = LabelSpec(horizon=h).make(close)
    assert binary.iloc[-h:].isna().all() and binary.iloc[:-h].notna().all()
    np.testing.assert_array_equal(binary.iloc[:-h], (fwd.iloc[:-h] > 0).astype(float))
    band = 5e-4
    spec = LabelSpec(horizon=h, kind="ternary", dead_band=band)
    ternary = spec.make(close)
    expect = np.select([fwd > band, fwd < -band], [2.0, 0.0], 1.0)[:-h]
    np.testing.assert_array_equal(ternary.iloc[:-h], expect)
    assert set(np.unique(ternary.dropna())) == {0.0, 1.0, 2.0} and spec.n_classes == 3
    assert LabelSpec().n_classes == 2
    pd.testing.assert_series_equal(forward_return_labels(close, h, "ternary", band), ternary)
    assert ternary.index.equals(close.index)


def test_labels_look_forward_only_by_horizon(week_bars: pd.DataFrame) -> None:
    close = week_bars["close"].iloc[:300].copy()
    base = LabelSpec(horizon=3).make(close)
    close.iloc[200] *= 2
    changed = LabelSpec(horizon=3).make(close)
    differ = np.flatnonzero(base.fillna(-1).to_numpy() != changed.fillna(-1).to_numpy())
    assert set(differ) <= {197, 198, 199, 200}  # only rows whose horizon covers row 200
    assert len(differ) > 0


def test_label_spec_validates() -> None:
    for bad in ({"horizon": 0}, {"kind": "quaternary"}, {"dead_band": -0.1}):
        with pytest.raises(ConfigError):
            LabelSpec(**bad)


@given(n=st.integers(50, 100_000), val=st.floats(0.0, 0.4), test=st.floats(0.01, 0.4), embargo=st.integers(0, 20))
def test_chronological_split_properties(n: int, val: float, test: float, embargo: int) -> None:
    try:
        train, va, te = chronological_split(n, val, test, embargo)
    except DataQualityError:
        # Only when the parts and embargoes leave (almost) nothing to train on.
        assert n * (1 - val - test) - 2 * embargo < 3
        return
    assert train.start == 0 and te.stop == n and train.stop > 0
    assert train.stop <= va.start <= va.stop <= te.start
    if va.stop > va.start:
        assert va.start - train.stop == embargo and te.start - va.stop == embargo
    else:
        assert te.start - train.stop == embargo
    assert abs((te.stop - te.start) - n * test) <= 1


def test_split_errors() -> None:
    with pytest.raises(DataQualityError):
        chronological_split(10, 0.5, 0.5, 0)
    with pytest.raises(DataQualityError, match="no training rows"):
        chronological_split(20, 0.2, 0.2, 10)


@given(n=st.integers(100, 5000), folds=st.integers(1, 6), embargo=st.integers(0, 10))
def test_purged_folds(n: int, folds: int, embargo: int) -> None:
    out = purged_time_folds(n, folds, embargo)
    assert len(out) == folds
    prev_val_end = 0
    for train, val in out:
        assert train[0] == 0 and np.all(np.diff(train) == 1) and np.all(np.diff(val) == 1)
        assert val[0] - train[-1] > embargo  # no val row within `embargo` of a train row
        assert val[0] >= prev_val_end
        prev_val_end = val[-1] + 1
    assert out[-1][1][-1] == n - 1


def test_sequence_windows_are_views() -> None:
    X = np.arange(2000 * 3, dtype=np.float32).reshape(2000, 3)
    W = sequence_windows(X, 64)
    assert W.shape == (2000 - 64 + 1, 64, 3)
    assert np.shares_memory(W, X) and not W.flags.writeable
    np.testing.assert_array_equal(W[10], X[10:74])
    y = np.arange(2000)
    assert window_targets(y, 64)[10] == 73  # the label of the window's last row
    with pytest.raises(DataQualityError):
        sequence_windows(X, 0)
    with pytest.raises(DataQualityError):
        sequence_windows(X[:, 0], 4)


def test_windows_memory_is_bounded() -> None:
    X = np.random.default_rng(0).normal(size=(100_000, 40)).astype(np.float32)
    tracemalloc.start()
    try:
        W = sequence_windows(X, 64)
        batch = np.ascontiguousarray(W[np.arange(0, 256)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.shape == (256, 64, 40)
    assert peak < 0.2 * X.nbytes  # only the batch was materialised
