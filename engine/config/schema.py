"""Dataclass schemas of the top-level config and of the spine's groups (paths, source, storage, tracking,
task=prepare). Other groups keep their schemas beside them in ``engine/config/groups_*.py``.

A group option's YAML names its schema in its defaults list (``/schema/<group>/<name>@_here_``) so
Hydra rejects unknown keys and wrong types while composing; ranges and choices are checked right after
(``engine.config.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from engine.fields import bounded, choice
from engine.timeframes import NAMES as TIMEFRAMES


@dataclass
class PathsConfig:
    # Everything a run writes is under root: the project directory unless ENGINE_ROOT says otherwise.
    root: str = "${oc.env:ENGINE_ROOT,${hydra:runtime.cwd}}"
    data: str = "${paths.root}/data"
    raw: str = "${paths.data}/raw"
    clean: str = "${paths.data}/clean"
    features: str = "${paths.data}/features"
    models: str = "${paths.root}/models"


# -- source ---------------------------------------------------------------------------------------
@dataclass
class CsvSourceConfig:
    _target_: str = "engine.sources.csv.CsvBarSource"
    path: str = MISSING
    timeframe: str = choice("M1", TIMEFRAMES)
    start: str | None = None
    end: str | None = None


@dataclass
class StoreSourceConfig:
    _target_: str = "engine.sources.store.StoreBarSource"
    store: Any = MISSING
    start: str | None = None
    end: str | None = None


# -- storage --------------------------------------------------------------------------------------
@dataclass
class ParquetStorageConfig:
    _target_: str = "engine.storage.parquet.ParquetStore"
    root: str = "${paths.raw}"


@dataclass
class TimescaleStorageConfig:
    _target_: str = "engine.storage.timescaledb.TimescaleDBClient"
    host: str = "localhost"
    port: int = bounded(5432, ge=1, le=65535)
    dbname: str = "engine"
    user: str = "engine"
    password: str = "${secret:db_password}"
    sslmode: str = choice("require", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"))
    sslrootcert: str | None = None
    connect_timeout: int = bounded(10, ge=1, le=300)


# -- tracking -------------------------------------------------------------------------------------
@dataclass
class TrackingConfig:
    enabled: bool = True
    # MLflow 3's default local backend is SQLite; keep it in the project so the UI finds every run.
    uri: str = "sqlite:///${paths.root}/mlflow.db"
    artifact_root: str | None = "${paths.root}/mlartifacts"
    experiment: str = "engine-${task.name}"
    run_name: str | None = None
    log_config: bool = True


# -- task -----------------------------------------------------------------------------------------
@dataclass
class PrepareTaskConfig:
    name: str = "prepare"
    # Fail instead of writing when the source has more missing bars than this fraction.
    max_missing_fraction: float = bounded(0.05, ge=0.0, le=1.0)


# -- root -----------------------------------------------------------------------------------------
@dataclass
class Config:
    task: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    source: Any = MISSING
    storage: Any = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Groups delivered by the data, model, connector, secrets and trading parts; None until selected.
    secrets: Any = None
    connector: Any = None
    cleaner: Any = None
    features: Any = None
    labels: Any = None
    model: Any = None
    trainer: Any = None
    risk: Any = None
    backtest: Any = None
    symbol: str = "BTCUSD"
    timeframe: str = choice("M1", TIMEFRAMES)
    seed: int = bounded(42, ge=0)
    # Smoke mode: the same code paths on a small slice, for tests and quick checks of experiments.
    smoke: bool = False


SCHEMAS: dict[str, dict[str, type]] = {
    "source": {"csv": CsvSourceConfig, "store": StoreSourceConfig},
    "storage": {"parquet": ParquetStorageConfig, "timescaledb": TimescaleStorageConfig},
    "tracking": {"tracking": TrackingConfig},
    "task": {"prepare": PrepareTaskConfig},
}
