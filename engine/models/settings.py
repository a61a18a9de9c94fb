"""What a model is built from: the Lightning trainer's settings, the nets' callbacks and each family's
hyperparameters.

These frozen dataclasses are the single source of names, defaults and bounds. ``MLPipeline`` checks
``params`` against them when it is built, and the config schemas of the ``model``, ``trainer`` and
``callbacks`` groups are generated from them (``engine.config.groups.*``), so a range or a default is
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
    # Older spelling of callbacks.early_stopping.patience, kept for existing configs and Python callers:
    # when set it wins (<= 0 turns early stopping off); None leaves it to CallbackSettings.
    early_stopping_patience: int | None = None
    gradient_clip_val: float | None = 1.0
    num_workers: int = bounded(0, ge=0)
    enable_progress_bar: bool = True
    deterministic: bool = True
    # torch intra-op threads while training (0: leave torch's setting). On a small machine shared with
    # other jobs, 1 avoids threads spinning against each other (measured 5x faster on 2 busy cores).
    torch_threads: int = bounded(0, ge=0)
    # A Lightning checkpoint to resume from (``last``: the newest last.ckpt of earlier runs). Read by
    # task=train, which passes it to ``MLPipeline.fit(ckpt_path=)``; the pipeline never resumes from this
    # field itself, so a walk-forward refit, a tune candidate or a reloaded model always starts fresh.
    ckpt_path: str | None = None

    def __post_init__(self) -> None:
        fields.check(self, "trainer")


# -- Lightning callbacks of the nets (conf/callbacks); tree models ignore them --------------------------
_MONITORED = ("val_loss", "train_loss")  # what LitClassifier logs once per epoch


@dataclass(frozen=True)
class CheckpointSettings:
    """Lightning's ModelCheckpoint: the best epoch's full state (weights, optimiser, loop) and the last.

    The fit ends on the best epoch's weights. ``dirpath`` None: task=train writes into its run folder's
    ``checkpoints/`` (resumable with trainer.ckpt_path); Python callers and CV folds into a temp dir."""

    enabled: bool = True
    monitor: str = choice("val_loss", _MONITORED)
    mode: str = choice("min", ("min", "max"))
    save_top_k: int = bounded(1, ge=-1)  # -1: every epoch, 0: none (then the fit keeps its last weights)
    save_last: bool = True  # last.ckpt, what a resume starts from
    every_n_epochs: int = bounded(1, ge=1)
    dirpath: str | None = None

    def __post_init__(self) -> None:
        fields.check(self, "callbacks.model_checkpoint")


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """Lightning's EarlyStopping (a ``trainer.early_stopping_patience`` that is set overrides ``patience``)."""

    enabled: bool = True
    monitor: str = choice("val_loss", _MONITORED)
    mode: str = choice("min", ("min", "max"))
    patience: int = bounded(3, ge=1)  # epochs without an improvement of more than min_delta
    min_delta: float = bounded(0.0, ge=0.0)

    def __post_init__(self) -> None:
        fields.check(self, "callbacks.early_stopping")


@dataclass(frozen=True)
class ProgressBarSettings:
    """Lightning's RichProgressBar (also needs ``trainer.enable_progress_bar``)."""

    enabled: bool = True
    # batches between redraws; 0: about 50 per epoch (redrawing every step costs a measurable share of a
    # small CPU step)
    refresh_rate: int = bounded(0, ge=0)
    leave: bool = False  # keep each epoch's bar on screen

    def __post_init__(self) -> None:
        fields.check(self, "callbacks.rich_progress_bar")


@dataclass(frozen=True)
class LrMonitorSettings:
    """Lightning's LearningRateMonitor: the optimiser's learning rate (MLflow: ``fit/lr-AdamW``; needs a logger,
    i.e. tracking; without one it is skipped)."""

    enabled: bool = True
    logging_interval: str = choice("epoch", ("epoch", "step"))

    def __post_init__(self) -> None:
        fields.check(self, "callbacks.lr_monitor")


@dataclass(frozen=True)
class CallbackSettings:
    """The callbacks a net's Trainer gets (conf/callbacks/*.yaml); the defaults are what nets always had."""

    model_checkpoint: CheckpointSettings = dataclasses.field(default_factory=CheckpointSettings)
    early_stopping: EarlyStoppingSettings = dataclasses.field(default_factory=EarlyStoppingSettings)
    rich_progress_bar: ProgressBarSettings = dataclasses.field(default_factory=ProgressBarSettings)
    lr_monitor: LrMonitorSettings = dataclasses.field(default_factory=LrMonitorSettings)

    @classmethod
    def from_mapping(cls, node: Mapping[str, Any]) -> CallbackSettings:
        """From the ``callbacks`` config node (plain dicts); an absent entry keeps its defaults."""
        kinds = {f.name: f.default_factory for f in dataclasses.fields(cls)}
        unknown = sorted(set(node) - set(kinds))
        if unknown:
            raise ConfigError(f"callbacks.{unknown[0]}", f"unknown callback; choose among {sorted(kinds)}")
        return cls(**{name: kinds[name](**dict(value)) for name, value in node.items()})  # type: ignore[misc]


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
