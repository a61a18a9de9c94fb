"""Lightning's MLflow logger writing into an engine job's run (imports lightning: load it lazily).

At module level, not inside a function: ``trainer=ddp`` (ddp_spawn) pickles the logger to its worker
processes, and pickle finds classes by their module path. Only global rank 0 writes (Lightning's loggers
log from rank 0 only), into the run the job's own process opened: the per-epoch losses under the run's
grouped names (``train/loss``, ``val/loss``; Lightning's ``epoch`` and the LR monitor's ``lr-AdamW`` as
``fit/epoch``, ``fit/lr-AdamW``: :func:`engine.tracking.mlflow.metric_key`; CV folds prefixed ``cv0-``),
and, once the final fit ended, its best checkpoint as the artifact ``checkpoints/<name>.ckpt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from engine.tracking.mlflow import metric_key

CHECKPOINT_ARTIFACTS = "checkpoints"


class JobRunLogger(MLFlowLogger):
    def __init__(self, *, run_id: str, tracking_uri: str | None, prefix: str = "") -> None:
        super().__init__(run_id=run_id, tracking_uri=tracking_uri, prefix=prefix)
        self._best: Any = None  # the final fit's checkpoint callback (a CV fold's states stay out of the run)

    # The job's metric names (engine.tracking.mlflow.metric_key): train_loss/val_loss appear in MLflow as
    # train/loss and val/loss beside val/sharpe; Lightning's own figures (epoch, lr-*) go under fit/.
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({metric_key(k, "fit"): v for k, v in metrics.items()}, step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._prefix:
            self._best = checkpoint_callback

    # The stock logger marks the run FINISHED when training ends; the run belongs to the engine job, which
    # logs more afterwards and closes it itself, so finalize only logs the best checkpoint.
    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        best = self._best.best_model_path if self._best is not None else ""
        if status == "success" and best:
            self.experiment.log_artifact(self.run_id, best, CHECKPOINT_ARTIFACTS)
