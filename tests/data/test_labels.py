"""Forward-return labels: binary and ternary classes, looking forward by exactly the horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data.labels import LabelSpec, forward_return_labels
from engine.errors import ConfigError


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
