"""``trainer=ddp``: DistributedDataParallel in 2 CPU processes over gloo (Lightning's ddp_spawn).

The job stays one process; only fit() is spread over the two ranks. What must hold: both ranks trained
with gloo, only rank 0 wrote checkpoints and MLflow metrics, and what was learned matches one process
within a stated tolerance (the same global batch per optimiser step; only the order in which the
DistributedSampler deals the samples differs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from engine.models.pipeline import MLPipeline
from engine.models.settings import TrainerSettings
from tests.tasks.conftest import Store

pytestmark = pytest.mark.slow

# Measured on the windows below: |Δ val_log_loss| 1e-4, |Δ val_accuracy| 0.005 after 3 epochs.
LOG_LOSS_TOLERANCE = 0.01
ACCURACY_TOLERANCE = 0.03


class _RecordingIO:
    """Wraps the strategy's checkpoint writer: which rank asked to write what."""

    def __init__(self, inner: Any, out: Path, rank: int) -> None:
        self.inner, self.out, self.rank = inner, out, rank

    def save_checkpoint(self, checkpoint: Any, path: Any, storage_options: Any = None) -> None:
        with (self.out / f"saves-rank{self.rank}.txt").open("a") as f:
            f.write(f"{path}\n")
        self.inner.save_checkpoint(checkpoint, path, storage_options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RankRecorder(Callback):
    """Runs in every DDP process (pickled to the spawned ranks): records who trained and who saved."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        import torch.distributed as dist

        rank = trainer.global_rank
        # checkpoints reach the disk through the strategy's CheckpointIO; record each rank's writes there
        trainer.strategy.checkpoint_io = _RecordingIO(trainer.strategy.checkpoint_io, self.out, rank)
        backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
        (self.out / f"rank{rank}.json").write_text(json.dumps({"world_size": trainer.world_size,
                                                               "backend": backend}))


def _windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 5)).astype("float32")
    y = (x[:, -1, 0] + 0.5 * rng.normal(size=n) > 0).astype("int64")
    return x, y


def _fit(strategy: str, devices: int, out: Path) -> dict[str, float]:
    x, y = _windows(3000, 0)
    x_val, y_val = _windows(600, 1)
    settings = TrainerSettings(max_epochs=3, batch_size=128, strategy=strategy, devices=devices,
                               enable_progress_bar=False, early_stopping_patience=0)
    pipe = MLPipeline("lstm", {"hidden_dim": 16}, trainer=settings, device="cpu", seed=1)
    return pipe.fit(x, y, validation=(x_val, y_val), callbacks=[RankRecorder(out)])


def test_two_gloo_processes_learn_what_one_process_learns(tmp_path: Path) -> None:
    (one := tmp_path / "one").mkdir()
    (two := tmp_path / "two").mkdir()
    single = _fit("auto", 1, one)
    ddp = _fit("ddp_spawn", 2, two)
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks == [{"world_size": 2, "backend": "gloo"}] * 2
    # rank 0 wrote the best-epoch checkpoint; rank 1 never wrote one
    assert (two / "saves-rank0.txt").read_text().count("best") >= 1
    assert not (two / "saves-rank1.txt").exists()
    assert ddp["epochs_run"] == single["epochs_run"] == 3
    assert ddp["val_log_loss"] == pytest.approx(single["val_log_loss"], abs=LOG_LOSS_TOLERANCE)
    assert ddp["val_accuracy"] == pytest.approx(single["val_accuracy"], abs=ACCURACY_TOLERANCE)


def test_lstm_experiment_trains_with_ddp_and_logs_one_run(run_engine, engine_root: Path) -> None:
    # (that DDP learns what one process learns is the test above; this one runs the real job end to end)
    ddp = run_engine("+experiment=lstm_5m", "smoke=true", "task.smoke_max_epochs=2", "task.report=[]",
                     "task.log_model=false", "trainer=ddp", timeout=900)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    store = Store(engine_root)
    (run,) = store.runs("lstm_5m")
    assert run.info.status == "FINISHED" and run.data.params["trainer.strategy"] == "ddp_spawn"
    # rank 0 alone logged the curves: one point per epoch (two ranks logging would double them)
    epochs = int(run.data.metrics["fit/epochs_run"])
    assert epochs == 2
    assert len(store.client.get_metric_history(run.info.run_id, "val/loss")) == epochs
    assert len(store.client.get_metric_history(run.info.run_id, "train/loss")) == epochs
    assert 0.0 < run.data.metrics["val/log_loss"] < 1.0 and Path(run.data.tags["model_path"]).is_file()
