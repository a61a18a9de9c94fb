"""A Lightning callback that feeds an Optuna trial's pruner with the validation loss of each epoch.

Handed to ``MLPipeline.fit(callbacks=[...])`` by the train task when the job is a trial of engine's Optuna
sweeper and the sweeper has a pruner. When the pruner says stop, :class:`optuna.TrialPruned` ends the fit;
the job fails with it and the sweeper records the trial as PRUNED (not FAILED).
"""

from __future__ import annotations

from typing import Any

import optuna
from lightning.pytorch.callbacks import Callback


class OptunaPruning(Callback):
    """Reports ``monitor`` (a loss: lower is better) after each validation epoch. Pruners compare values in
    the study's direction, and a study maximising e.g. val_sharpe would take a higher loss for better, so
    there the reported value is the negated loss."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial = trial
        self.monitor = monitor
        self.sign = -1.0 if trial.study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(self.sign * float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}: "
                                     f"{self.monitor}={float(value):.5f}")
