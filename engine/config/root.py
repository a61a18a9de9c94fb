"""The root of every composed config (``base_config`` in the ConfigStore, first in conf/config.yaml's defaults).

Groups with one schema are typed with it; groups whose options have different schemas (source, storage,
task, model, connector, ...) are ``Any`` here and get their option's schema when it is merged in. Either way
:func:`engine.config.validate.validate` refuses a key that no schema declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from engine.config.groups.paths import PathsConfig
from engine.config.groups.risk import RiskConfig
from engine.config.groups.sweep import SweepConfig
from engine.config.groups.tracking import TrackingConfig
from engine.fields import bounded, choice
from engine.timeframes import NAMES as TIMEFRAMES


@dataclass
class Config:
    task: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    source: Any = MISSING
    storage: Any = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Optional groups: None until an option is selected.
    secrets: Any = None
    connector: Any = None
    cleaner: Any = None
    features: Any = None
    labels: Any = None
    model: Any = None
    trainer: Any = None
    callbacks: Any = None
    risk: RiskConfig | None = None
    backtest: Any = None
    # Which Optuna trial this job is: set by engine's Optuna sweeper on each job it launches, empty otherwise.
    sweep: SweepConfig = field(default_factory=SweepConfig)
    symbol: str = "BTCUSD"
    timeframe: str = choice("M1", TIMEFRAMES)
    seed: int = bounded(42, ge=0)
    # Smoke mode: the same code paths on a small slice, for tests and quick checks of experiments.
    smoke: bool = False
