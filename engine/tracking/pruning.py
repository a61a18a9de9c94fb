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
    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned after epoch {epoch}: "
                                     f"{self.monitor}={float(value):.5f}")
