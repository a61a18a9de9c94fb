"""What a model is built from: the Lightning trainer's settings and each family's hyperparameters.

These frozen dataclasses are the single source of names, defaults and bounds. ``MLPipeline`` checks
``params`` against them when it is built, and the config schemas of the ``model`` and ``trainer`` groups
are generated from them (``engine.config.groups.model`` / ``trainer``), so a range or a default is
written once. Bounds and choices are field metadata (:mod:`engine.fields`), enforced by
``engine.fields.check`` when an instance is made and by the config validator before a job starts.
Torch-free on purpose: the config layer imports this module at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import fields
from engine.errors import ConfigError
from engine.fields import bounded, bounded_items, choice


@dataclass(frozen=True)
class TrainerSettings:
    """What the Lightning Trainer (and the optimiser) of a net is built from; ignored by tree models.

    ``max_epochs`` defaults to 10 for Python callers; conf/trainer/*.yaml set 20 explicitly.
    """

    max_epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(256, ge=1)
    learning_rate: float = bounded(1e-3, gt=0.0)
    weight_decay: float = bounded(0.0, ge=0.0)
    accelerator: str = choice("cpu", ("cpu", "gpu", "cuda", "mps", "auto"))
    devices: Any = 1  # a count, "auto", or a list of device ids
    strategy: str = "auto"  # auto, ddp, ddp_spawn, fsdp, ...
    precision: str = choice("32-true", ("32-true", "32", "16-mixed", "bf16-mixed", "64-true"))
    early_stopping_patience: int = 3  # epochs without val_loss improvement; <= 0 disables
    gradient_clip_val: float | None = 1.0
    num_workers: int = bounded(0, ge=0)
    enable_progress_bar: bool = True
    deterministic: bool = True
    # torch intra-op threads while training (0: leave torch's setting). On a small machine shared with
    # other jobs, 1 avoids threads spinning against each other (measured 5x faster on 2 busy cores).
    torch_threads: int = bounded(0, ge=0)

    def __post_init__(self) -> None:
        fields.check(self, "trainer")


# tune() routes grid keys with these names to TrainerSettings (nets only); every other key is a model param
TRAINER_GRID_KEYS: frozenset[str] = frozenset(
    {"max_epochs", "batch_size", "learning_rate", "weight_decay", "early_stopping_patience", "gradient_clip_val"})


@dataclass(frozen=True)
class _FamilyParams:
    def __post_init__(self) -> None:
        fields.check(self, "model.params")


# -- tree families: names and defaults mirror the estimators' signatures (a test keeps them equal) -----
@dataclass(frozen=True)
class RandomForestParams(_FamilyParams):
    """``n_jobs`` defaults to 1 for Python callers (tests share 2 cores); conf/model sets -1 explicitly."""

    n_estimators: int = bounded(200, ge=1)
    max_depth: int | None = bounded(8, ge=1)
    min_samples_leaf: int = bounded(5, ge=1)
    max_features: Any = "sqrt"  # "sqrt", "log2", a fraction, or null for all
    class_weight: str | None = None
    n_jobs: int = 1
    random_state: int | None = 0  # the pipeline passes its seed; not a config key


@dataclass(frozen=True)
class XGBoostParams(_FamilyParams):
    n_estimators: int = bounded(300, ge=1)
    max_depth: int = bounded(4, ge=1, le=32)
    learning_rate: float = bounded(0.05, gt=0.0, le=1.0)
    subsample: float = bounded(0.8, gt=0.0, le=1.0)
    colsample_bytree: float = bounded(0.8, gt=0.0, le=1.0)
    min_child_weight: float = bounded(1.0, ge=0.0)
    reg_lambda: float = bounded(1.0, ge=0.0)
    tree_method: str = choice("hist", ("hist", "approx", "exact"))
    device: str = "cpu"  # the pipeline's device= sets it; not a config key
    n_jobs: int = 1
    random_state: int | None = 0  # the pipeline passes its seed; not a config key


# -- neural families: names and defaults mirror the nn.Modules' signatures (a test keeps them equal) ---
@dataclass(frozen=True)
class DnnParams(_FamilyParams):
    hidden_dims: Sequence[int] = bounded_items((128, 64), ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class LstmParams(_FamilyParams):
    hidden_dim: int = bounded(64, ge=1)
    num_layers: int = bounded(1, ge=1)
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False


@dataclass(frozen=True)
class TransformerParams(_FamilyParams):
    d_model: int = bounded(32, ge=1)
    nhead: int = bounded(4, ge=1)
    num_layers: int = bounded(2, ge=1)
    dim_feedforward: int = bounded(64, ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    max_len: int = bounded(1024, ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_model % self.nhead:
            raise ConfigError("model.params.nhead", f"d_model={self.d_model} must be divisible by nhead={self.nhead}")


@dataclass(frozen=True)
class Cnn1dParams(_FamilyParams):
    channels: int = bounded(32, ge=1)
    kernel_size: int = bounded(3, ge=2)
    num_layers: int = bounded(4, ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)


PARAMS: dict[str, type[_FamilyParams]] = {
    "random_forest": RandomForestParams, "xgboost": XGBoostParams, "dnn": DnnParams, "lstm": LstmParams,
    "transformer": TransformerParams, "cnn1d": Cnn1dParams,
}

# Set by the pipeline from its own arguments (seed, device), so config files never carry them.
PIPELINE_SET_PARAMS: tuple[str, ...] = ("random_state", "device")


def family_params(model_type: str, params: Mapping[str, Any]) -> _FamilyParams:
    """``params`` checked against the family's names, bounds and choices (ConfigError on the first problem)."""
    settings = PARAMS[model_type]
    allowed = [f.name for f in dataclasses.fields(settings)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"model.params.{unknown[0]}",
                          f"unknown hyperparameter(s) {unknown} for {model_type}; allowed: {allowed}")
    return settings(**params)
