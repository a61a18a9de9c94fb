"""Small real-bar datasets for model tests: a few return/range/volume features of the bundled
BTCUSDT 1-minute sample and a next-bar direction label (0 down/flat, 1 up)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from engine.models.settings import TrainerSettings
from engine.sources.csv import SAMPLE_PATH, CsvBarSource

SEQ = 8


@dataclass(frozen=True)
class Bars:
    X: pd.DataFrame  # features, one row per bar
    y: np.ndarray  # next-bar direction
    W: np.ndarray  # windows [n, SEQ, f] ending at rows SEQ-1.., labelled by yw
    yw: np.ndarray

    @property
    def names(self) -> list[str]:
        return list(self.X.columns)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Other test processes share the 2 cores; two intra-op threads then spin against each other and
    a one-second fit takes tens of seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bars() -> Bars:
    raw = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1").iloc[:2500]
    logc = np.log(raw["close"])
    feat = pd.DataFrame({
        "ret1": logc.diff(), "ret5": logc.diff(5), "range": (raw["high"] - raw["low"]) / raw["close"],
        "vol": np.log1p(raw["volume"]),
    })
    y = (raw["close"].shift(-1) > raw["close"]).astype("int64")
    keep = feat.notna().all(axis=1) & raw["close"].shift(-1).notna()
    X, yy = feat[keep], y[keep].to_numpy().copy()
    arr = X.to_numpy(dtype="float32")
    W = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(arr, (SEQ, arr.shape[1]))[:, 0])
    return Bars(X=X, y=yy, W=W, yw=yy[SEQ - 1:].copy())


@pytest.fixture(scope="session")
def quick() -> TrainerSettings:
    return TrainerSettings(max_epochs=2, batch_size=128, enable_progress_bar=False, early_stopping_patience=2)


_SMALL_PARAMS = {
    "random_forest": {"n_estimators": 20, "max_depth": 4},
    "xgboost": {"n_estimators": 20, "max_depth": 3},
    "dnn": {"hidden_dims": [16]},
    "lstm": {"hidden_dim": 8},
    "transformer": {"d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16},
    "cnn1d": {"channels": 8, "num_layers": 2},
}


@pytest.fixture(scope="session")
def small_params() -> dict[str, dict]:
    """Hyperparameters small enough that each family fits in a second or two."""
    return {k: dict(v) for k, v in _SMALL_PARAMS.items()}


@pytest.fixture(scope="session")
def family_inputs(bars: Bars):
    """model_type -> (X, y, fit kwargs) in the shape that family takes."""
    def make(model_type: str) -> tuple[object, np.ndarray, dict]:
        if model_type in ("lstm", "transformer", "cnn1d"):
            return bars.W, bars.yw, {"feature_names": bars.names}
        return bars.X, bars.y, {}
    return make
