"""The nets' Lightning callbacks come from CallbackSettings (conf/callbacks) and change what training does;
a fit interrupted after some epochs resumes from its last.ckpt at the next epoch; a checkpoint of another
network is refused with one ConfigError line before any epoch runs. Real Lightning on tiny CPU data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.callbacks import Callback

from engine.errors import ConfigError
from engine.models.pipeline import MLPipeline
from engine.models.settings import (
    CallbackSettings,
    CheckpointSettings,
    EarlyStoppingSettings,
    LrMonitorSettings,
    TrainerSettings,
)

FAST = TrainerSettings(max_epochs=2, batch_size=256, enable_progress_bar=False, learning_rate=1e-2)


class EpochsSeen(Callback):
    """Which epochs the Trainer ran (a user callback passed to fit)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.epochs.append(int(trainer.current_epoch))


def _settings(folder: Path | None, **parts: Any) -> CallbackSettings:
    checkpoint = CheckpointSettings(dirpath=str(folder) if folder else None)
    return dataclasses.replace(CallbackSettings(model_checkpoint=checkpoint), **parts)


def _fit(bars, trainer: TrainerSettings, settings: CallbackSettings, *, params: dict | None = None,
         ckpt_path: Path | str | None = None, hooks: tuple = (), names: list[str] | None = None,
         ) -> tuple[MLPipeline, dict[str, float], list[int]]:
    seen = EpochsSeen()
    pipe = MLPipeline("dnn", params or {"hidden_dims": [8]}, trainer=trainer, device="cpu",
                      callback_settings=settings, hooks=hooks)
    x = bars.X.iloc[:1200]
    if names is not None:
        x = x.set_axis(names, axis=1)
    metrics = pipe.fit(x, bars.y[:1200], callbacks=[seen], ckpt_path=ckpt_path)
    return pipe, metrics, seen.epochs


def test_early_stopping_from_settings_stops_early_and_the_switch_turns_it_off(bars) -> None:
    # min_delta so large that no epoch counts as an improvement: patience 1 stops after the second epoch
    long = dataclasses.replace(FAST, max_epochs=6)
    stop = EarlyStoppingSettings(patience=1, min_delta=10.0)
    _, metrics, epochs = _fit(bars, long, _settings(None, early_stopping=stop))
    assert epochs == [0, 1] and metrics["epochs_run"] == 2
    off = dataclasses.replace(stop, enabled=False)
    _, metrics, epochs = _fit(bars, long, _settings(None, early_stopping=off))
    assert epochs == list(range(6)) and metrics["epochs_run"] == 6


def test_the_older_trainer_patience_still_wins_when_set(bars) -> None:
    # TrainerSettings.early_stopping_patience (existing configs, Python callers) overrides the callbacks' own
    long = dataclasses.replace(FAST, max_epochs=6, early_stopping_patience=2)
    stop = EarlyStoppingSettings(patience=1, min_delta=10.0)
    _, metrics, _ = _fit(bars, long, _settings(None, early_stopping=stop))
    assert metrics["epochs_run"] == 3
    off = dataclasses.replace(long, early_stopping_patience=0)
    assert _fit(bars, off, _settings(None, early_stopping=stop))[1]["epochs_run"] == 6


def test_checkpoints_land_in_the_folder_and_a_disabled_checkpoint_writes_none(bars, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    _fit(bars, FAST, _settings(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    off = tmp_path / "off"
    _fit(bars, FAST, _settings(off, model_checkpoint=CheckpointSettings(enabled=False, dirpath=str(off))))
    assert not off.exists()


def test_an_interrupted_fit_resumes_at_its_next_epoch(bars, tmp_path: Path) -> None:
    first = tmp_path / "run1" / "checkpoints"
    _, metrics, epochs = _fit(bars, FAST, _settings(first))
    assert epochs == [0, 1] and metrics["epochs_run"] == 2
    second = tmp_path / "run2" / "checkpoints"
    longer = dataclasses.replace(FAST, max_epochs=4)
    pipe, metrics, epochs = _fit(bars, longer, _settings(second), ckpt_path=first / "last.ckpt")
    assert epochs == [2, 3] and metrics["epochs_run"] == 4
    # the resumed run keeps its own complete set of files (its best may still be the first run's epoch)
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in second.iterdir()}
    assert pipe.predict_proba(bars.X.iloc[1200:1300]).shape == (100, 2)
    # the resumed run's own last.ckpt holds the full state again: a second interruption resumes as well
    _, metrics, epochs = _fit(bars, dataclasses.replace(FAST, max_epochs=5), _settings(tmp_path / "run3"),
                              ckpt_path=second / "last.ckpt")
    assert epochs == [4] and metrics["epochs_run"] == 5


def test_a_checkpoint_of_another_network_or_missing_file_is_one_config_error(bars, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    _fit(bars, FAST, _settings(folder))
    last = folder / "last.ckpt"
    with pytest.raises(ConfigError, match=r"trainer\.ckpt_path: .*last\.ckpt was trained with params=") as err:
        _fit(bars, FAST, _settings(None), params={"hidden_dims": [16]}, ckpt_path=last)
    assert "\n" not in str(err.value)
    renamed = ["a", "b", "c", "d"]
    with pytest.raises(ConfigError, match=r"trained with feature_names=\['ret1'"):
        _fit(bars, FAST, _settings(None), ckpt_path=last, names=renamed)
    with pytest.raises(ConfigError, match=r"does not exist"):
        _fit(bars, FAST, _settings(None), ckpt_path=tmp_path / "nope.ckpt")
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(last.read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"not a readable checkpoint"):
        _fit(bars, FAST, _settings(None), ckpt_path=torn)
    with pytest.raises(ConfigError, match=r"trainer\.ckpt_path: checkpoints apply to nets only"):
        MLPipeline("xgboost", {"n_estimators": 5}).fit(bars.X.iloc[:500], bars.y[:500], ckpt_path=last)


def test_cv_folds_neither_resume_nor_write_into_the_folder(bars, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    pipe = MLPipeline("dnn", {"hidden_dims": [8]}, trainer=FAST, device="cpu", callback_settings=_settings(folder))
    pipe.fit(bars.X.iloc[:1200], bars.y[:1200], cv=2)
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]  # the final fit's only


def test_lr_monitor_and_best_checkpoint_reach_the_mlflow_run(bars, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from engine.tracking.model_hooks import run_hooks

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("callbacks", artifact_location=(tmp_path / "art").as_uri()))
    run_id = run.info.run_id
    folder = tmp_path / "checkpoints"
    _fit(bars, FAST, _settings(folder), hooks=tuple(run_hooks(run_id, uri)))
    logged = client.get_run(run_id).data.metrics
    assert logged["fit/lr-AdamW"] == pytest.approx(1e-2) and "train/loss" in logged and "val/loss" in logged
    assert len(client.get_metric_history(run_id, "val/loss")) == 2  # one per epoch
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    # switched off: no learning-rate metric
    run2 = client.create_run(run.info.experiment_id).info.run_id
    _fit(bars, FAST, _settings(None, lr_monitor=LrMonitorSettings(enabled=False)), hooks=tuple(run_hooks(run2, uri)))
    assert "fit/lr-AdamW" not in client.get_run(run2).data.metrics and "val/loss" in client.get_run(run2).data.metrics
