"""task=train with the callbacks group and trainer.ckpt_path, through the real CLI (smoke mode, a small dnn):
checkpoints persist in the Hydra run folder, the best one is an artifact of the MLflow run, an interrupted run
resumes at its next epoch, and a missing or mismatched checkpoint is one line and exit 2 before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from engine.config.validate import validate
from tests.tasks.conftest import Store

# a net small enough for a few seconds per run; smoke would cap the epochs at 1, so lift the cap
NET = ["task=train", "model=dnn", "model.params.hidden_dims=[8]", "features=minimal", "trainer=cpu",
       "trainer.torch_threads=1", "smoke=true", "task.smoke_max_epochs=4", "task.log_model=false", "task.report=[]"]


def _train_runs(store: Store) -> list:
    return [r for r in store.runs("engine-train") if r.data.tags.get("task") == "train"]


def _metrics(run: Any) -> dict[str, float]:
    """The flat metrics the job wrote to its run folder (MLflow may group their names)."""
    return json.loads(Path(run.data.tags["hydra_output_dir"], "metrics.json").read_text())


def test_checkpoints_persist_and_an_interrupted_run_resumes_from_last(run_engine, store: Store) -> None:
    first = run_engine(*NET, "trainer.max_epochs=2", timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = _train_runs(store)
    folder = Path(run.data.tags["hydra_output_dir"]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert f"continue with trainer.ckpt_path={folder / 'last.ckpt'}" in first.stdout + first.stderr
    assert "checkpoints/best.ckpt" in store.artifacts(run.info.run_id)
    assert _metrics(run)["fit_epochs_run"] == 2
    assert len(store.client.get_metric_history(run.info.run_id, "train/loss")) == 2
    assert "fit/lr-AdamW" in run.data.metrics  # the LR monitor of callbacks=default

    resumed = run_engine(*NET, "trainer.max_epochs=4", f"trainer.ckpt_path={folder / 'last.ckpt'}", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    second = _train_runs(store)[-1]
    assert second.info.run_id != run.info.run_id
    assert _metrics(second)["fit_epochs_run"] == 4  # ended at 4 epochs in all ...
    assert len(store.client.get_metric_history(second.info.run_id, "train/loss")) == 2  # ... 2 of them here
    assert Path(second.data.tags["hydra_output_dir"], "checkpoints", "last.ckpt").is_file()

    # another network (wider layer) from that checkpoint: refused before any data is read or run opened
    other = run_engine(*NET, "model.params.hidden_dims=[16]", f"trainer.ckpt_path={folder / 'last.ckpt'}")
    assert other.returncode == 2, other.stderr[-3000:]
    assert other.stderr.strip().splitlines() == [other.stderr.strip()]
    assert "trainer.ckpt_path" in other.stderr and "hidden_dims" in other.stderr
    assert len(_train_runs(store)) == 2


def test_a_missing_checkpoint_is_one_line_and_exit_2(run_engine, engine_root: Path) -> None:
    proc = run_engine(*NET, "trainer.ckpt_path=outputs/nowhere/last.ckpt")
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("engine: ConfigError: trainer.ckpt_path: ") and "does not exist" in line
    assert not (engine_root / "mlflow.db").exists() and "fit dnn" not in proc.stdout


def _run(compose_job, overrides: list[str]) -> DictConfig:
    from engine.tasks import train

    cfg = compose_job([*NET, *overrides])
    validate(cfg)
    train.run(cfg)
    return cfg


def test_without_tracking_the_checkpoints_stay_in_the_run_folder(compose_job, engine_root: Path) -> None:
    _run(compose_job, ["tracking=off", "trainer.max_epochs=1"])
    assert (engine_root / "outputs" / "checkpoints" / "best.ckpt").is_file()


def test_callbacks_none_writes_no_checkpoints(compose_job, engine_root: Path) -> None:
    _run(compose_job, ["tracking=off", "callbacks=none", "trainer.max_epochs=1"])
    assert (engine_root / "outputs").is_dir() and not (engine_root / "outputs" / "checkpoints").exists()


def test_every_callbacks_option_builds_its_settings(compose_job, engine_root: Path) -> None:
    from engine.cli import CONF_DIR
    from engine.tasks.model_wiring import callback_settings

    options = sorted(p.stem for p in (CONF_DIR / "callbacks").glob("*.yaml"))
    assert options == ["default", "minimal", "none"]
    built = {}
    for option in options:
        cfg = compose_job(["task=train", "model=lstm", f"callbacks={option}"])
        validate(cfg)
        built[option] = callback_settings(cfg)
    assert built["default"].model_checkpoint.dirpath == str(engine_root / "outputs" / "checkpoints")
    assert built["default"].early_stopping.patience == 3 and built["default"].lr_monitor.enabled
    assert not built["minimal"].rich_progress_bar.enabled and built["minimal"].model_checkpoint.enabled
    assert not any(getattr(built["none"], f).enabled
                   for f in ("model_checkpoint", "early_stopping", "rich_progress_bar", "lr_monitor"))
    relative = compose_job(["task=train", "callbacks.model_checkpoint.dirpath=ckpts"])
    assert callback_settings(relative).model_checkpoint.dirpath == str(engine_root / "ckpts")
