"""``hydra/sweeper=engine_optuna``: the sweeper's settings (``hydra.sweeper.*``), stored in Hydra's ConfigStore.

Key names follow the official hydra-optuna-sweeper's where they mean the same (``direction``, ``study_name``,
``storage``, ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``sampler``, ``params``), so overrides such as
``hydra.sweeper.n_trials=50`` read as before; ``pruner`` is new. ``sampler`` and ``pruner`` are
``_target_`` nodes that Hydra instantiates (any class of ``optuna.samplers`` / ``optuna.pruners``).
"""

# No `from __future__ import annotations`: Hydra executes plugin modules before registering them in
# sys.modules, and a dataclass with string annotations needs its module there.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class EngineOptunaSweeperConf:
    _target_: str = "hydra_plugins.engine_optuna_sweeper.sweeper.EngineOptunaSweeper"
    direction: str = "minimize"  # minimize | maximize the value the job returns (engine: task.objective)
    # Several sweeper processes given the same name and storage contribute trials to one study.
    study_name: str | None = None  # null: "engine-<sweep dir name>"
    # A database URL (postgresql://..., sqlite:///...; keep credentials out of YAML: ${oc.env:VAR}); null: a
    # journal file in the sweep directory, which processes on this machine (joblib, a local Ray) share.
    storage: str | None = None
    n_trials: int = 20  # trials this sweeper runs (each sweeper sharing a study adds its own)
    n_jobs: int = 2  # trials proposed per batch and handed to the launcher at once
    max_failure_rate: float = 0.0  # share of a batch allowed to fail before the sweep stops
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2}; nets only
    parent_run_wait_s: float = 60.0  # how long a joining sweeper waits for the creator's MLflow run id
    params: dict[str, str] = field(default_factory=dict)  # key: choice(...) | range(...) | interval(...)


ConfigStore.instance().store(group="hydra/sweeper", name="engine_optuna", node=EngineOptunaSweeperConf,
                             provider="engine")
