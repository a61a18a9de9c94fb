"""Chronological validation: purged, embargoed, time-ordered folds; tuning over them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataQualityError
from engine.pipeline import MLPipeline, holdout_split, purged_time_folds


@given(n=st.integers(20, 5000), k=st.integers(1, 6), embargo=st.integers(0, 30))
@settings(max_examples=200, deadline=None)
def test_folds_are_time_ordered_and_purged(n, k, embargo):
    try:
        folds = purged_time_folds(n, k, embargo)
    except DataQualityError:
        return  # too little data for this combination: refused, never silently shrunk
    assert len(folds) == k
    last_val_end = -1
    for train, val in folds:
        assert len(train) >= 1 and len(val) >= 1
        assert np.all(np.diff(train) == 1) and np.all(np.diff(val) == 1)
        assert train[0] == 0  # expanding window
        # no validation index within `embargo` bars of a training index, and never training after validation
        assert val.min() - train.max() > embargo
        assert val.min() > last_val_end  # validation blocks move forward in time without overlap
        last_val_end = val.max()
    assert last_val_end == n - 1


@given(n=st.integers(10, 2000), share=st.floats(0.05, 0.5), embargo=st.integers(0, 5))
@settings(max_examples=100, deadline=None)
def test_holdout_takes_the_last_part(n, share, embargo):
    try:
        train, val = holdout_split(n, share, embargo)
    except DataQualityError:
        return
    assert val.max() == n - 1 and len(val) == max(1, round(n * share))
    assert val.min() - train.max() == embargo + 1


def test_fit_with_cv_reports_fold_means(bars):
    pipe = MLPipeline("random_forest", {"n_estimators": 10, "max_depth": 3})
    m = pipe.fit(bars.X, bars.y, cv=3, embargo=10)
    for name in ("accuracy", "balanced_accuracy", "f1", "log_loss", "roc_auc"):
        assert f"cv_{name}" in m and f"val_{name}" in m
    assert 0 <= m["cv_accuracy"] <= 1


def test_too_many_folds_is_refused(bars):
    with pytest.raises(DataQualityError, match="too few"):
        MLPipeline("xgboost").fit(bars.X[:20], bars.y[:20], cv=8, embargo=5)


def test_tune_picks_the_best_cv_score_and_refits(bars):
    # one informative column makes depth matter: the grid has a clear winner
    X = bars.X.copy()
    X["signal"] = np.where(bars.y == 1, 1.0, -1.0) + np.random.default_rng(0).normal(0, 0.8, len(X))
    pipe = MLPipeline("xgboost", {"n_estimators": 5})
    out = pipe.tune(X, bars.y, {"max_depth": [1, 3], "learning_rate": [0.001, 0.3]}, cv=2, embargo=3,
                    metric="log_loss")
    assert len(out["results"]) == 4
    scores = [r["score"] for r in out["results"]]
    assert out["best_score"] == min(scores)  # log_loss: smaller is better
    assert out["best_params"]["learning_rate"] == 0.3  # a 0.001 step barely moves off the prior
    # learning_rate is also an xgboost param name; the pipeline must have refit with the winner
    assert pipe.params["max_depth"] == out["best_params"]["max_depth"]
    assert pipe.is_fitted and "val_log_loss" in out["refit_metrics"]


def test_tune_routes_trainer_keys_to_the_trainer(bars, quick):
    pipe = MLPipeline("dnn", {"hidden_dims": [8]}, trainer=quick)
    out = pipe.tune(bars.X[:900], bars.y[:900], {"batch_size": [64, 256]}, cv=2, epochs=1)
    assert pipe.trainer.batch_size == out["best_params"]["batch_size"]
    assert "batch_size" not in pipe.params
