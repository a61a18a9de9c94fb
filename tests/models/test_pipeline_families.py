"""Every family fits and predicts on real bars; save -> load gives identical predictions."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from engine.models import MODEL_TYPES
from engine.models.pipeline import MLPipeline

METRIC_KEYS = {"val_accuracy", "val_balanced_accuracy", "val_f1", "val_log_loss", "val_roc_auc"}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_fit_predict_save_load(model_type, family_inputs, small_params, quick, tmp_path):
    X, y, kw = family_inputs(model_type)
    pipe = MLPipeline(model_type, small_params[model_type], trainer=quick, seed=3,
                      metadata={"labels": {"kind": "next_bar_direction", "horizon": 1}})
    metrics = pipe.fit(X, y, val_split=0.25, embargo=2, **kw)

    assert set(metrics) >= METRIC_KEYS
    n = len(y)
    n_val = round(n * 0.25)
    assert metrics["train_samples"] == n - n_val - 2  # the embargo rows are dropped, not trained on
    assert metrics["val_samples"] == n_val
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["val_log_loss"] > 0
    if pipe.is_net:
        assert 1 <= metrics["epochs_run"] <= quick.max_epochs
    assert pipe.is_sequence == (model_type in ("lstm", "transformer", "cnn1d"))
    assert pipe.feature_names_ == ["ret1", "ret5", "range", "vol"]

    tail = X[-300:]
    proba = pipe.predict_proba(tail)
    assert proba.shape == (300, 2)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    pred = pipe.predict(tail)
    assert pred.dtype == np.int64 and np.array_equal(pred, proba.argmax(axis=1))
    # val metrics are the metrics of predict_proba on the validation tail
    val_acc = float(np.mean(pipe.predict(X[-n_val:]) == y[-n_val:]))
    assert metrics["val_accuracy"] == pytest.approx(val_acc)

    path = pipe.save(tmp_path / "models" / f"{model_type}.zip")
    assert path.is_file()
    loaded = MLPipeline.load(path)
    assert np.array_equal(loaded.predict_proba(tail), proba)
    assert loaded.feature_names_ == pipe.feature_names_ and loaded.metadata["labels"]["horizon"] == 1
    assert pipe.load(path).model_type == model_type  # the instance spelling works too
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["versions"]["numpy"] == np.__version__
    assert manifest["output_dim"] == 2 and manifest["params"] == small_params[model_type]
    if pipe.is_net:
        assert manifest["scaler"] is not None and len(manifest["scaler"]["mean"]) == 4


def test_scaler_sees_training_rows_only(bars, quick):
    pipe = MLPipeline("dnn", {"hidden_dims": [8]}, trainer=quick)
    pipe.fit(bars.X, bars.y, val_split=0.3, embargo=5, epochs=1)
    n_train = int(pipe.metrics_["train_samples"])
    train = bars.X.to_numpy()[:n_train]
    assert np.allclose(pipe.scaler_.mean, train.mean(axis=0))
    assert not np.allclose(pipe.scaler_.mean, bars.X.to_numpy().mean(axis=0))


def test_three_classes_with_one_missing_from_training(bars):
    # class 2 occurs only in the validation tail: probabilities still have output_dim columns
    y = bars.y.copy()
    y[-50:] = 2
    pipe = MLPipeline("xgboost", {"n_estimators": 10}, output_dim=3)
    metrics = pipe.fit(bars.X, y, val_split=0.1)
    proba = pipe.predict_proba(bars.X[-60:])
    assert proba.shape == (60, 3)
    assert np.all(proba[:, 2] == 0)
    assert not math.isnan(metrics["val_roc_auc"])


def test_same_seed_same_net(bars, quick):
    a = MLPipeline("lstm", {"hidden_dim": 8}, trainer=quick, seed=11)
    b = MLPipeline("lstm", {"hidden_dim": 8}, trainer=quick, seed=11)
    W, y = bars.W[:800], bars.yw[:800]
    a.fit(W, y, epochs=1, feature_names=bars.names)
    b.fit(W, y, epochs=1, feature_names=bars.names)
    assert np.array_equal(a.predict_proba(W[-50:]), b.predict_proba(W[-50:]))


def test_epochs_override_and_user_callbacks_run(bars):
    from lightning.pytorch.callbacks import Callback

    from engine.models.settings import TrainerSettings

    class CountEpochs(Callback):
        def __init__(self) -> None:
            self.epochs = 0

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.epochs += 1

    counter = CountEpochs()
    pipe = MLPipeline("cnn1d", {"channels": 4, "num_layers": 2},
                      trainer=TrainerSettings(max_epochs=9, early_stopping_patience=0, enable_progress_bar=True))
    metrics = pipe.fit(bars.W[:600], bars.yw[:600], epochs=3, callbacks=[counter], feature_names=bars.names)
    assert counter.epochs == 3 and metrics["epochs_run"] == 3


def test_accepts_read_only_window_views_from_the_data_layer(bars, quick):
    from engine.data.windows import sequence_windows, window_targets

    X = bars.X.to_numpy()[:500]
    W = sequence_windows(X, 6)  # a strided, read-only float64 view
    assert not W.flags.writeable
    pipe = MLPipeline("transformer", {"d_model": 8, "nhead": 2, "num_layers": 1}, trainer=quick)
    pipe.fit(W, window_targets(bars.y[:500], 6), epochs=1, feature_names=bars.names)
    assert pipe.predict_proba(W[-3:]).shape == (3, 2)


def test_torch_threads_apply_to_training_only(bars):
    import torch

    from engine.models.settings import TrainerSettings

    seen = []

    from lightning.pytorch.callbacks import Callback

    class ThreadProbe(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    pipe = MLPipeline("dnn", {"hidden_dims": [4]},
                      trainer=TrainerSettings(max_epochs=1, enable_progress_bar=False, torch_threads=target))
    pipe.fit(bars.X[:300], bars.y[:300], callbacks=[ThreadProbe()])
    assert seen == [target]
    assert torch.get_num_threads() == before


def test_every_copy_of_one_fitted_model_is_the_same_file(family_inputs, small_params, quick, tmp_path, monkeypatch):
    """The run's own file and its "latest" copy are saved moments apart; neither the manifest nor the zip
    members may carry the moment of saving (an hour later here), only the fit's."""
    import time

    X, y, kw = family_inputs("random_forest")
    pipe = MLPipeline("random_forest", small_params["random_forest"], trainer=quick, seed=3)
    pipe.fit(X, y, val_split=0.25, **kw)
    first = pipe.save_copy(tmp_path / "run" / "pipeline.zip").read_bytes()
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert pipe.save(tmp_path / "latest" / "pipeline.zip").read_bytes() == first
