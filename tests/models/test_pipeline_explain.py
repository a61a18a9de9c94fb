"""SHAP attributions per feature for a tree and for sequence nets."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.models.pipeline import MLPipeline


def _with_signal(bars):
    # a column that carries the label (plus noise) must come out as the most important feature
    X = bars.X.copy()
    X["signal"] = np.where(bars.y == 1, 1.0, -1.0) + np.random.default_rng(1).normal(0, 0.5, len(X))
    return X


@pytest.mark.parametrize("model_type", ["xgboost", "random_forest"])
def test_tree_explain_ranks_the_informative_feature_first(bars, model_type):
    X = _with_signal(bars)
    pipe = MLPipeline(model_type, {"n_estimators": 20, "max_depth": 3})
    pipe.fit(X, bars.y)
    imp = pipe.explain(X, max_samples=150)
    assert list(imp.columns) == ["mean_abs_shap"] and imp.index.name == "feature"
    assert sorted(imp.index) == sorted(X.columns)
    assert imp.index[0] == "signal"
    assert imp["mean_abs_shap"].is_monotonic_decreasing and (imp["mean_abs_shap"] >= 0).all()
    assert pipe.shap_values_.shape[:2] == (150, 5)


def test_sequence_net_attributions_sum_over_time(bars, quick):
    X = _with_signal(bars)
    arr = X.to_numpy(dtype="float32")
    seq = 6
    W = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(arr, (seq, arr.shape[1]))[:, 0])
    y = bars.y[seq - 1:]
    pipe = MLPipeline("lstm", {"hidden_dim": 8}, trainer=quick)
    pipe.fit(W, y, epochs=3, feature_names=list(X.columns))
    imp = pipe.explain(W, max_samples=40, background_samples=30, nsamples=40)
    assert pipe.shap_values_.shape == (40, seq, 5, 2)
    expected = np.abs(pipe.shap_values_.sum(axis=1)).mean(axis=(0, 2))
    assert np.allclose(imp.loc[list(X.columns), "mean_abs_shap"].to_numpy(), expected)
    assert imp.index[0] == "signal"
    with pytest.raises(ConfigError, match="only 'shap'"):
        pipe.explain(W, method="lime")
