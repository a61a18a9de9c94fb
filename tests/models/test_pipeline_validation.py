"""Chronological validation in fit and tune: purged, embargoed, time-ordered folds (the fold and holdout
functions themselves are property-tested in tests/data/test_splits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import DataQualityError
from engine.models.pipeline import MLPipeline


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


@pytest.mark.parametrize(("model_type", "params"), [("xgboost", {"n_estimators": 5}), ("dnn", {"hidden_dims": [8]})])
def test_an_explicit_validation_span_scores_that_span_and_all_of_x_trains(bars, quick, model_type, params):
    X_train, y_train = bars.X.iloc[:1800], bars.y[:1800]
    X_val, y_val = bars.X.iloc[1810:], bars.y[1810:]  # 10 embargoed rows left out by the caller
    pipe = MLPipeline(model_type, params, trainer=quick)
    metrics = pipe.fit(X_train, y_train, validation=(X_val, y_val), embargo=10)
    holdout = MLPipeline(model_type, params, trainer=quick).fit(bars.X, bars.y)
    assert set(metrics) == set(holdout)  # the same metric names either way
    assert metrics["train_samples"] == 1800 and metrics["val_samples"] == len(y_val)
    assert metrics["val_accuracy"] == pytest.approx(float(np.mean(pipe.predict(X_val) == y_val)))
    if pipe.is_net:  # the scaler saw every training row and no validation row
        assert np.allclose(pipe.scaler_.mean, X_train.to_numpy().mean(axis=0))


def test_validation_windows_are_checked_like_the_training_ones(bars, quick):
    pipe = MLPipeline("lstm", {"hidden_dim": 4}, trainer=quick)
    metrics = pipe.fit(bars.W[:600], bars.yw[:600], validation=(bars.W[610:800], bars.yw[610:800]), embargo=10,
                       epochs=1, feature_names=bars.names)
    assert metrics["val_samples"] == 190
    with pytest.raises(DataQualityError, match="windows of 4 steps"):
        pipe.fit(bars.W[:600], bars.yw[:600], validation=(bars.W[610:800, :4], bars.yw[610:800]),
                 feature_names=bars.names)
    with pytest.raises(DataQualityError, match="but y has"):
        pipe.fit(bars.W[:600], bars.yw[:600], validation=(bars.W[610:800], bars.yw[610:700]),
                 feature_names=bars.names)


def test_val_split_and_a_validation_span_together_are_refused(bars):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="not both"):
        MLPipeline("xgboost").fit(bars.X[:100], bars.y[:100], val_split=0.3, validation=(bars.X[100:], bars.y[100:]))
