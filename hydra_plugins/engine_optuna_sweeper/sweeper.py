"""The Hydra side of engine's Optuna sweeper: settings in, ``sweep`` to the batch loop in ``_impl``.

Hydra imports every public module under ``hydra_plugins`` at start-up to find plugins, so this one stays
light; Optuna, MLflow and engine load only when a sweep starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class EngineOptunaSweeper(Sweeper):
    """Ask an Optuna study for ``n_jobs`` trials at a time, run them on the configured launcher, tell the
    study each outcome (COMPLETE, PRUNED or FAIL); see ``config.EngineOptunaSweeperConf`` for the keys."""

    def __init__(self, direction: str, study_name: str | None, storage: str | None, n_trials: int, n_jobs: int,
                 max_failure_rate: float, sampler: Any, pruner: Any, parent_run_wait_s: float,
                 params: Mapping[str, Any] | None) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction must be minimize or maximize; got {direction!r}")
        if n_trials < 0 or n_jobs < 1 or not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError("hydra.sweeper: n_trials >= 0, n_jobs >= 1 and 0 <= max_failure_rate <= 1")
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.max_failure_rate = float(max_failure_rate)
        self.sampler = sampler  # instantiated by Hydra from its _target_ node
        self.pruner = pruner
        self.parent_run_wait_s = float(parent_run_wait_s)
        self.params: dict[str, Any] = dict(OmegaConf.to_container(params, resolve=True)) if isinstance(
            params, DictConfig) else dict(params or {})
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        # the sweep's own process resolves ${hydra:...} (paths, tracking URI) before any job exists
        HydraConfig.instance().set_config(config)
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from hydra_plugins.engine_optuna_sweeper._impl import run_sweep

        run_sweep(self, list(arguments))
