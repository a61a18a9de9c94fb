"""Schemas of the modelling groups: model (one per family), trainer, backtest, and task=train/explain.

Each model family has its own typed ``params`` node, so a misspelt hyperparameter fails while Hydra
composes instead of being dropped on the floor. ``model.type`` names the MLPipeline family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from engine.errors import ConfigError
from engine.fields import bounded, choice
from engine.timeframes import NAMES as TIMEFRAMES

SEQUENCE_MODELS = ("lstm", "transformer", "cnn1d")
MODEL_TYPES = ("random_forest", "xgboost", "dnn", *SEQUENCE_MODELS)
# Post-run reporting steps (engine.tasks.reporting.STEPS implements each name).
REPORT_STEPS = ("confusion_matrix", "feature_importance", "equity_curve", "shap_summary")


# -- model ----------------------------------------------------------------------------------------
@dataclass
class RandomForestParams:
    n_estimators: int = bounded(200, ge=1)
    max_depth: int | None = 8
    min_samples_leaf: int = bounded(5, ge=1)
    max_features: Any = "sqrt"  # "sqrt", "log2", a fraction, or null for all
    class_weight: str | None = None
    n_jobs: int = -1


@dataclass
class XGBoostParams:
    n_estimators: int = bounded(300, ge=1)
    max_depth: int = bounded(4, ge=1, le=32)
    learning_rate: float = bounded(0.05, gt=0.0, le=1.0)
    subsample: float = bounded(0.8, gt=0.0, le=1.0)
    colsample_bytree: float = bounded(0.8, gt=0.0, le=1.0)
    min_child_weight: float = bounded(1.0, ge=0.0)
    reg_lambda: float = bounded(1.0, ge=0.0)
    tree_method: str = choice("hist", ("hist", "approx", "exact"))
    n_jobs: int = -1


@dataclass
class DnnParams:
    hidden_dims: list[int] = field(default_factory=lambda: [128, 64], metadata={"item_bounds": {"ge": 1}})
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)


@dataclass
class LstmParams:
    hidden_dim: int = bounded(64, ge=1)
    num_layers: int = bounded(1, ge=1)
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False


@dataclass
class TransformerParams:
    d_model: int = bounded(32, ge=1)
    nhead: int = bounded(4, ge=1)
    num_layers: int = bounded(2, ge=1)
    dim_feedforward: int = bounded(64, ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    max_len: int = bounded(1024, ge=1)


@dataclass
class Cnn1dParams:
    channels: int = bounded(32, ge=1)
    kernel_size: int = bounded(3, ge=2)
    num_layers: int = bounded(4, ge=1)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)


@dataclass
class RandomForestModelConfig:
    type: str = choice("random_forest", ("random_forest",))
    params: RandomForestParams = field(default_factory=RandomForestParams)


@dataclass
class XGBoostModelConfig:
    type: str = choice("xgboost", ("xgboost",))
    params: XGBoostParams = field(default_factory=XGBoostParams)


@dataclass
class DnnModelConfig:
    type: str = choice("dnn", ("dnn",))
    params: DnnParams = field(default_factory=DnnParams)


@dataclass
class LstmModelConfig:
    type: str = choice("lstm", ("lstm",))
    seq_len: int = bounded(32, ge=2)  # bars per input window
    params: LstmParams = field(default_factory=LstmParams)


@dataclass
class TransformerModelConfig:
    type: str = choice("transformer", ("transformer",))
    seq_len: int = bounded(32, ge=2)
    params: TransformerParams = field(default_factory=TransformerParams)

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        p = node.params
        if p.d_model % p.nhead:
            raise ConfigError(f"{path}.params.nhead", f"d_model={p.d_model} must be divisible by nhead={p.nhead}")
        if node.seq_len > p.max_len:
            raise ConfigError(f"{path}.seq_len", f"{node.seq_len} exceeds params.max_len={p.max_len}")


@dataclass
class Cnn1dModelConfig:
    type: str = choice("cnn1d", ("cnn1d",))
    seq_len: int = bounded(32, ge=2)
    params: Cnn1dParams = field(default_factory=Cnn1dParams)


# -- trainer (Lightning, used by the neural families) -----------------------------------------------
@dataclass
class TrainerConfig:
    max_epochs: int = bounded(20, ge=1)
    batch_size: int = bounded(256, ge=1)
    learning_rate: float = bounded(1e-3, gt=0.0)
    weight_decay: float = bounded(0.0, ge=0.0)
    accelerator: str = choice("cpu", ("cpu", "gpu", "cuda", "mps", "auto"))
    devices: Any = 1  # a count, "auto", or a list of device ids
    strategy: str = "auto"  # auto, ddp, ddp_spawn, fsdp, ...
    precision: str = choice("32-true", ("32-true", "32", "16-mixed", "bf16-mixed", "64-true"))
    early_stopping_patience: int = 3  # epochs without val_loss improvement; 0 disables
    gradient_clip_val: float | None = 1.0
    num_workers: int = bounded(0, ge=0)
    enable_progress_bar: bool = True
    deterministic: bool = True
    # Intra-op threads while training; 0 leaves torch's default. 1 is faster on small shared machines.
    torch_threads: int = bounded(0, ge=0)


# -- backtest -------------------------------------------------------------------------------------
@dataclass
class BacktestConfig:
    _target_: str = "engine.trading.backtest.BacktestSettings"
    # Long when P(up) > long_threshold; short when P(down) > short_threshold and shorting is allowed.
    long_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    short_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    allow_short: bool = True
    spread_bps: float = bounded(2.0, ge=0.0)  # quoted spread; half of it is paid per unit traded
    commission_bps: float = bounded(1.0, ge=0.0)
    slippage_bps: float = bounded(0.5, ge=0.0)
    initial_equity: float = bounded(10_000.0, gt=0.0)


# -- tasks ----------------------------------------------------------------------------------------
@dataclass
class _ModelTaskConfig:
    """Settings train and explain share, so ``+experiment=X task=explain`` rebuilds X's dataset."""

    # Resample the loaded (base timeframe) bars to this bar size before cleaning; null keeps them.
    bar_size: str | None = None
    # Saved as ${paths.models}/<model_name>/pipeline.zip; experiments set their own name.
    model_name: str = "${model.type}"
    val_frac: float = bounded(0.15, gt=0.0, lt=0.5)
    test_frac: float = bounded(0.15, gt=0.0, lt=0.5)
    # Bars dropped between train/val/test; null = the label horizon (never less than it).
    embargo: int | None = None

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        if node.bar_size is not None and node.bar_size not in TIMEFRAMES:
            from engine import timeframes

            timeframes.parse(node.bar_size, key=f"{path}.bar_size")
        if node.val_frac + node.test_frac >= 0.8:
            raise ConfigError(f"{path}.test_frac", "val_frac + test_frac must leave at least 20% for training")
        if node.embargo is not None and node.embargo < 0:
            raise ConfigError(f"{path}.embargo", f"must be >= 0, got {node.embargo}")


@dataclass
class TrainTaskConfig(_ModelTaskConfig):
    name: str = "train"
    # The metric returned to Hydra (sweepers optimise it); any key of the returned metrics.
    objective: str | None = "val_sharpe"
    save_model: bool = True
    log_model: bool = True  # also log an MLflow model (signature + input example)
    dvc_track: bool = False  # `dvc add` the saved artifact (needs a DVC repository above paths.models)
    report: list[str] = field(default_factory=lambda: ["confusion_matrix", "feature_importance", "equity_curve"],
                              metadata={"item_choices": REPORT_STEPS})
    importance_samples: int = bounded(500, ge=10)  # rows used for permutation importance
    smoke_max_epochs: int = bounded(1, ge=1)  # epochs cap when smoke=true


@dataclass
class ExplainTaskConfig(_ModelTaskConfig):
    name: str = "explain"
    # A saved model artifact; null = ${paths.models}/<model_name>/pipeline.zip (where task=train saves).
    model_path: str | None = None
    method: str = choice("shap", ("shap",))
    max_samples: int = bounded(200, ge=1)  # rows of the test span explained
    top_k: int = bounded(20, ge=1)  # features shown in the summary plot


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "random_forest": RandomForestModelConfig, "xgboost": XGBoostModelConfig, "dnn": DnnModelConfig,
        "lstm": LstmModelConfig, "transformer": TransformerModelConfig, "cnn1d": Cnn1dModelConfig,
    },
    "trainer": {"trainer": TrainerConfig},
    "backtest": {"backtest": BacktestConfig},
    "task": {"train": TrainTaskConfig, "explain": ExplainTaskConfig},
}
