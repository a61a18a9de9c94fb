"""Shared by the model benchmarks: simple features and next-bar labels from the bundled sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.sources.csv import SAMPLE_PATH, CsvBarSource


def features_and_labels(n_rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    bars = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1").iloc[: n_rows + 80]
    c, logc = bars["close"], np.log(bars["close"])
    feat = pd.DataFrame({
        "ret1": logc.diff(), "ret5": logc.diff(5), "ret15": logc.diff(15), "ret60": logc.diff(60),
        "range": (bars["high"] - bars["low"]) / c, "body": (c - bars["open"]) / c,
        "vol": np.log1p(bars["volume"]), "vol_z": np.log1p(bars["volume"]).diff(),
    }).iloc[61:]
    y = (c.shift(-1) > c).astype("int64").loc[feat.index]
    return feat.iloc[:-1].iloc[-n_rows:], y.iloc[:-1].iloc[-n_rows:].to_numpy()


def windows(feat: pd.DataFrame, y: np.ndarray, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """[n - seq + 1, seq, f] windows ending at each row, labelled with that row's label."""
    arr = feat.to_numpy(dtype="float32")
    w = np.lib.stride_tricks.sliding_window_view(arr, (seq, arr.shape[1]))[:, 0]
    return np.ascontiguousarray(w), y[seq - 1:]
