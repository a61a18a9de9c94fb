"""The seed project's MLPipeline usage, followed literally, for a tree (random_forest) and a net (lstm).

The seed text itself is not in this repository; the calls below are rebuilt from its public API as the
issues quote it: ``MLPipeline(model_type, params)``; ``fit(X, y, val_split=0.2, cv=3)`` returning a metrics
dict; ``predict``; ``predict_proba``; ``save("model_rf.pkl")``; ``pipe2 = MLPipeline(model_type=...);
pipe2.load("model_rf.pkl"); pipe2.predict(X)`` as well as ``MLPipeline.load(path)``;
``tune(X, y, param_grid, cv)``; ``explain(X, method="shap")``. Sequence models take X [n, seq, features].
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError, OperationalError
from engine.models.pipeline import MLPipeline


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the seed saves to a relative path
    return tmp_path


def test_random_forest_as_the_seed_shows(bars, workdir):
    X, y = bars.X, bars.y

    pipe = MLPipeline(model_type="random_forest", params={"n_estimators": 100, "max_depth": 5})
    metrics = pipe.fit(X, y, val_split=0.2, cv=3)
    assert {"val_accuracy", "val_f1", "cv_accuracy", "cv_f1"} <= set(metrics)

    preds = pipe.predict(X)
    proba = pipe.predict_proba(X)
    assert preds.shape == (len(X),) and proba.shape == (len(X), 2)
    assert np.array_equal(preds, proba.argmax(axis=1))

    pipe.save("model_rf.pkl")
    assert (workdir / "model_rf.pkl").is_file()

    pipe2 = MLPipeline(model_type="random_forest")
    pipe2.load("model_rf.pkl")
    assert np.array_equal(pipe2.predict(X), preds)  # the instance spelling fills pipe2
    assert pipe2.params == {"n_estimators": 100, "max_depth": 5}  # the file's model, not the defaults

    pipe3 = MLPipeline.load("model_rf.pkl")  # the class spelling returns a new pipeline
    assert isinstance(pipe3, MLPipeline) and np.array_equal(pipe3.predict_proba(X), proba)

    result = pipe.tune(X, y, param_grid={"n_estimators": [20, 50], "max_depth": [3, 5]}, cv=3)
    assert result["best_params"] in [r["params"] for r in result["results"]] and len(result["results"]) == 4
    assert pipe.params["max_depth"] == result["best_params"]["max_depth"] and pipe.is_fitted

    importance = pipe.explain(X, method="shap")
    assert sorted(importance.index) == sorted(X.columns) and (importance["mean_abs_shap"] >= 0).all()


def test_lstm_as_the_seed_shows(bars, workdir):
    X_seq, y = bars.W, bars.yw  # [n, seq, features]

    pipe = MLPipeline(model_type="lstm", params={"hidden_dim": 16})
    metrics = pipe.fit(X_seq, y, val_split=0.2, cv=3, epochs=2, feature_names=bars.names)
    assert {"val_accuracy", "cv_accuracy", "epochs_run"} <= set(metrics) and metrics["epochs_run"] <= 2

    preds = pipe.predict(X_seq)
    proba = pipe.predict_proba(X_seq)
    assert preds.shape == (len(X_seq),) and proba.shape == (len(X_seq), 2)

    pipe.save("model_lstm.pkl")
    pipe2 = MLPipeline(model_type="lstm")
    pipe2.load("model_lstm.pkl")
    assert np.array_equal(pipe2.predict(X_seq), preds)
    assert np.array_equal(MLPipeline.load("model_lstm.pkl").predict_proba(X_seq), proba)

    result = pipe.tune(X_seq[-800:], y[-800:], param_grid={"hidden_dim": [4, 8]}, cv=3, epochs=1,
                       feature_names=bars.names)
    assert pipe.params["hidden_dim"] == result["best_params"]["hidden_dim"]

    importance = pipe.explain(X_seq[-100:], method="shap")
    assert sorted(importance.index) == sorted(bars.names)
    assert pipe.shap_values_.shape[:3] == (100, X_seq.shape[1], X_seq.shape[2])


def test_loading_into_a_pipeline_of_another_family_says_so(bars, workdir):
    pipe = MLPipeline(model_type="random_forest", params={"n_estimators": 10})
    pipe.fit(bars.X, bars.y)
    pipe.save("model_rf.pkl")
    other = MLPipeline(model_type="xgboost")
    with pytest.raises(ConfigError, match=r"holds a random_forest model.*built for xgboost"):
        other.load("model_rf.pkl")
    with pytest.raises(OperationalError, match="not fitted"):
        other.predict(bars.X)  # left untouched by the refused load
