"""Bad input gives typed errors that name the problem; a loaded model refuses different features."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.errors import ConfigError, DataQualityError, OperationalError
from engine.models.pipeline import MLPipeline
from engine.models.settings import TrainerSettings


@pytest.fixture(scope="module")
def fitted_xgb(bars):
    pipe = MLPipeline("xgboost", {"n_estimators": 5})
    pipe.fit(bars.X, bars.y)
    return pipe


def test_wrong_shapes(bars):
    with pytest.raises(DataQualityError, match=r"\[n, seq, features\]"):
        MLPipeline("lstm").fit(bars.X, bars.y)  # a 2-D frame into a sequence model
    with pytest.raises(DataQualityError, match=r"shape \(10, 4\)"):
        MLPipeline("cnn1d").fit(bars.X.to_numpy()[:10], bars.y[:10])
    with pytest.raises(DataQualityError, match="2-D X"):
        MLPipeline("xgboost").fit(bars.W, bars.yw)
    with pytest.raises(DataQualityError, match="but y has"):
        MLPipeline("random_forest").fit(bars.X, bars.y[:-3])
    with pytest.raises(DataQualityError, match="1-D"):
        MLPipeline("random_forest").fit(bars.X, np.stack([bars.y, bars.y], axis=1))
    with pytest.raises(DataQualityError, match="feature names"):
        MLPipeline("lstm").fit(bars.W, bars.yw, feature_names=["a", "b"])


def test_wrong_dtypes_and_values(bars):
    X = bars.X.copy()
    X["side"] = "buy"
    with pytest.raises(DataQualityError, match=r"\['side'\].*not numeric"):
        MLPipeline("xgboost").fit(X, bars.y)
    X = bars.X.copy()
    X.iloc[5, 1] = np.nan
    X.iloc[9, 1] = np.inf
    with pytest.raises(DataQualityError, match=r"NaN/inf.*'ret5': 2"):
        MLPipeline("dnn").fit(X, bars.y)
    with pytest.raises(DataQualityError, match="integer class ids"):
        MLPipeline("xgboost").fit(bars.X, bars.y.astype("float64"))
    with pytest.raises(DataQualityError, match=r"\[-1\] outside 0..1"):
        MLPipeline("xgboost").fit(bars.X, bars.y - 1 * (bars.y == 0))
    with pytest.raises(DataQualityError, match="must be numeric"):
        MLPipeline("lstm").fit(bars.W.astype(str), bars.yw)


def test_bad_construction_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model type 'svm'"):
        MLPipeline("svm")
    with pytest.raises(ConfigError, match=r"n_estimatorz.*allowed"):
        MLPipeline("xgboost", {"n_estimatorz": 3})
    with pytest.raises(ConfigError, match="hidden_dim"):
        MLPipeline("lstm", {"hidden": 3})
    with pytest.raises(ConfigError, match="output_dim"):
        MLPipeline("dnn", output_dim=1)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainerSettings(batch_size=0)
    with pytest.raises(ConfigError, match="val_split"):
        MLPipeline("xgboost").fit(np.zeros((10, 2)), np.zeros(10, dtype=int), val_split=1.0)


def test_unfitted_pipeline_refuses_to_predict(bars):
    with pytest.raises(OperationalError, match="not fitted"):
        MLPipeline("xgboost").predict(bars.X)


def test_loaded_model_refuses_other_features(fitted_xgb, bars, tmp_path):
    loaded = MLPipeline.load(fitted_xgb.save(tmp_path / "m.zip"))
    renamed = bars.X.rename(columns={"vol": "volume"})
    with pytest.raises(DataQualityError, match=r"missing \['vol'\], extra \['volume'\]"):
        loaded.predict(renamed)
    with pytest.raises(DataQualityError, match=r"missing \['range'\], extra \[\]"):
        loaded.predict(bars.X.drop(columns=["range"]))
    with pytest.raises(DataQualityError, match="different order"):
        loaded.predict(bars.X[["vol", "range", "ret5", "ret1"]])
    assert loaded.predict(bars.X[loaded.feature_names_]).shape == (len(bars.X),)


def test_sequence_model_checks_names_and_window_length(bars, quick):
    pipe = MLPipeline("lstm", {"hidden_dim": 4}, trainer=quick)
    pipe.fit(bars.W[:400], bars.yw[:400], epochs=1, feature_names=bars.names)
    with pytest.raises(DataQualityError, match=r"missing \['vol'\]"):
        pipe.predict(bars.W[:5], feature_names=["ret1", "ret5", "range", "volume"])
    with pytest.raises(DataQualityError, match="windows of 4 steps"):
        pipe.predict(bars.W[:5, :4])
    with pytest.raises(DataQualityError, match="trained on 4"):
        pipe.predict(bars.W[:5, :, :3])


def test_not_an_artifact(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_text("hello")
    with pytest.raises(DataQualityError, match="not an MLPipeline artifact"):
        MLPipeline.load(bogus)
    with pytest.raises(OperationalError, match="not found"):
        MLPipeline.load(tmp_path / "missing.zip")


def test_importing_the_pipeline_does_not_load_torch():
    code = "import sys, engine.models.pipeline; print(sorted(m for m in ('torch', 'lightning', 'shap', 'mlflow', 'xgboost') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_a_refused_fit_leaves_the_fitted_model_as_it_was(fitted_xgb, bars):
    before = fitted_xgb.predict_proba(bars.X[-20:])
    renamed = bars.X.rename(columns={"vol": "volume"})
    with pytest.raises(DataQualityError, match=r"missing \['volume'\]"):
        fitted_xgb.fit(renamed.iloc[:1000], bars.y[:1000], validation=(bars.X.iloc[1000:], bars.y[1000:]))
    assert fitted_xgb.feature_names_ == bars.names
    assert np.array_equal(fitted_xgb.predict_proba(bars.X[-20:]), before)
