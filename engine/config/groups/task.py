"""Schemas of the ``task`` group: what a run does (prepare, train, explain).

The dataset keys of train and explain (``bar_size``, ``val_frac``, ``test_frac``, ``embargo``) are generated
from :class:`engine.data.dataset.DatasetSettings`, which the tasks build from them; the rest are the tasks' own.
Train and explain share the dataset keys so ``+experiment=X task=explain`` rebuilds X's dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.config.derive import schema_from
from engine.data.dataset import DatasetSettings
from engine.fields import bounded, choice, choice_items
from engine.ingest.backfill import BackfillSettings
from engine.ingest.settings import IngestSettings
from engine.trading.walkforward import WalkForwardSettings

# Post-run reporting steps (engine.tasks.reporting.STEPS implements each name; a test keeps them equal).
REPORT_STEPS = ("confusion_matrix", "feature_importance", "equity_curve", "shap_summary")
# DatasetSettings keys that do not come from task.*: the window is the model's (model.seq_len) and the
# minimum span size is the dataset builder's own safety floor.
_NOT_TASK_KEYS = ("seq_len", "min_span_samples")


@dataclass
class PrepareTaskConfig:
    name: str = "prepare"
    # Fail instead of writing when the source has more missing bars than this fraction.
    max_missing_fraction: float = bounded(0.05, ge=0.0, le=1.0)


@dataclass
class _CleanKeys:
    name: str = "clean"


@dataclass
class FeaturesTaskConfig:
    # The bar size is the feature set's first timeframe: it reads ${paths.clean}/<symbol>_<that size>.parquet.
    name: str = "features"


@dataclass
class _TrainKeys:
    name: str = "train"
    # Saved as ${paths.models}/<model_name>/pipeline.zip; experiments set their own name.
    model_name: str = "${model.type}"
    # The metric returned to Hydra (sweepers optimise it); any key of the returned metrics.
    objective: str | None = "val_sharpe"
    save_model: bool = True
    log_model: bool = True  # also log an MLflow model (signature + input example)
    dvc_track: bool = False  # `dvc add` the saved artifact (needs a DVC repository above paths.models)
    report: Sequence[str] = choice_items(("confusion_matrix", "feature_importance", "equity_curve"), REPORT_STEPS)
    importance_samples: int = bounded(500, ge=10)  # rows used for permutation importance
    smoke_max_epochs: int = bounded(1, ge=1)  # epochs cap when smoke=true
    # Read the cleaned bars and features task=features stored in this folder instead of recomputing them
    # (the dvc.yaml train stage sets ${paths.features}); refused unless they were made with this run's
    # cleaner, features and bar size. null: computed from the source.
    features_from: str | None = None
    metrics_path: str | None = None  # also write the returned metrics here as JSON (relative: to paths.root)
    # Register the logged model in the MLflow Model Registry under this name and point register_alias at the
    # new version (task=live task.model=models:/NAME@champion trades it); needs tracking and log_model.
    register_as: str | None = None
    register_alias: str | None = "champion"


@dataclass
class _ExplainKeys:
    name: str = "explain"
    # Must match the trained model's name: the model is read from ${paths.models}/<model_name>/.
    model_name: str = "${model.type}"
    # A saved model artifact; null = ${paths.models}/<model_name>/pipeline.zip (where task=train saves).
    model_path: str | None = None
    method: str = choice("shap", ("shap",))
    max_samples: int = bounded(200, ge=1)  # rows of the test span explained
    top_k: int = bounded(20, ge=1)  # features shown in the summary plot


TrainTaskConfig = schema_from(DatasetSettings, name="TrainTaskConfig", exclude=_NOT_TASK_KEYS, extra=_TrainKeys,
                              build_check=True)
ExplainTaskConfig = schema_from(DatasetSettings, name="ExplainTaskConfig", exclude=_NOT_TASK_KEYS,
                                extra=_ExplainKeys, build_check=True)
# task=clean resamples to the dataset's bar size before cleaning, as the dataset does: only that key.
CleanTaskConfig = schema_from(DatasetSettings, name="CleanTaskConfig", extra=_CleanKeys, build_check=True,
                              exclude=(*_NOT_TASK_KEYS, "val_frac", "test_frac", "embargo"))

@dataclass
class _IngestKeys:
    name: str = "ingest"
    duration: float | None = bounded(None, gt=0)  # seconds; null = until Ctrl-C / SIGTERM
    smoke_seconds: float = bounded(8.0, gt=0)  # smoke=true: the run ends by itself after this long
    # The embedded simulator's replay clock (connector=simulator only; a live terminal keeps its own time).
    replay_speed: float = bounded(60.0, gt=0)  # 60 = one replayed minute per second
    replay_start: str | None = "2024-03-28T00:00:00Z"
    display: bool = True  # live terminal display (rows/s, lag, errors)
    display_interval: float = bounded(1.0, gt=0)
    clean: bool = False  # run the configured cleaner over each poll's rows before they are stored
    stop_timeout: float = bounded(30.0, gt=0)  # seconds stop() may spend writing what is buffered


@dataclass
class _BackfillKeys:
    name: str = "backfill"
    progress: bool = True


IngestTaskConfig = schema_from(IngestSettings, name="IngestTaskConfig", extra=_IngestKeys, build_check=True)
BackfillTaskConfig = schema_from(BackfillSettings, name="BackfillTaskConfig", extra=_BackfillKeys, build_check=True)

# task=backtest: the walk-forward node is generated from engine.trading.walkforward.WalkForwardSettings.
WalkForwardConfig = schema_from(WalkForwardSettings, name="WalkForwardConfig", build_check=True)


@dataclass
class _BacktestKeys:
    name: str = "backtest"
    # A saved pipeline.zip or an MLflow model URI (models:/NAME@alias, models:/NAME/VERSION, models:/<id>,
    # runs:/<run_id>/model); null = ${paths.models}/<model_name>/pipeline.zip (where task=train saves).
    model: str | None = None
    model_name: str = "${model.type}"
    # all: every sample of the loaded span; test: the test span of task=train's split (same numbers as train).
    span: str = choice("all", ("all", "test"))
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)  # type: ignore[valid-type]
    report: bool = True  # trades CSV/Parquet, PNGs and one HTML page (MLflow + the Hydra run folder)
    smoke_max_epochs: int = bounded(1, ge=1)  # walk-forward nets: epochs cap when smoke=true
    # As task=train's: the stored bars + features of task=features (the dvc.yaml evaluate stage sets them),
    # the returned metrics as JSON, and the equity curve as CSV (time, equity, buy_and_hold) for dvc plots.
    features_from: str | None = None
    metrics_path: str | None = None
    equity_path: str | None = None


BacktestTaskConfig = schema_from(DatasetSettings, name="BacktestTaskConfig", exclude=_NOT_TASK_KEYS,
                                 extra=_BacktestKeys, build_check=True)



@dataclass
class LiveTaskConfig:
    """task=live (docs/live.md): paper trading on the simulator by default; a real terminal needs mode=live."""

    name: str = "live"
    mode: str = choice("paper", ("paper", "live"))
    confirm_live: bool = False  # mode=live also needs this, TLS to the bridge and the API key from secrets
    # A saved pipeline.zip or an MLflow model URI (models:/NAME@champion); null = ${paths.models}/<model_name>/
    model: str | None = None
    model_name: str = "lstm_5m"  # what the README's main command saves
    session: str | None = None  # names the audit trail and the risk state; null = <model_name>-<symbol>-<magic>
    magic: int = bounded(234_000, ge=1)
    deviation: int = bounded(20, ge=0)
    warmup: int | None = bounded(None, ge=2)  # closed bars before trading; null = what the features need
    volume: str = choice("real", ("real", "tick"))  # the bar volume the features use (as the model was trained)
    poll_interval: float = bounded(1.0, gt=0.0)  # seconds between looks at a feed that runs on its own
    # The embedded simulator (connector=simulator): replay from here, replay_speed bar-seconds per second.
    replay_start: str = "2024-03-20T00:00:00Z"
    replay_speed: float = bounded(60.0, ge=0.0)  # 0 = as fast as the loop goes
    max_signal_age: float | None = bounded(None, ge=0.0)  # seconds a closed bar may still trade; null = half a bar
    flatten_on_stop: bool = False
    heartbeat_seconds: float = bounded(10.0, gt=0.0)
    # A closed position whose closing deals are not all in the broker's history blocks entries until booked;
    # after this long (broker time) an ERROR names the operator's settle command, and again every as long.
    unsettled_alarm_seconds: float = bounded(900.0, gt=0.0)
    max_bars: int | None = bounded(None, ge=1)  # end by itself after this many bars
    smoke_bars: int = bounded(300, ge=1)  # smoke=true: bars replayed, as fast as possible
    audit_fsync: bool = True  # the write-ahead of an order request is on disk before the order leaves


SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"prepare": PrepareTaskConfig, "clean": CleanTaskConfig, "features": FeaturesTaskConfig,
             "train": TrainTaskConfig, "explain": ExplainTaskConfig, "backtest": BacktestTaskConfig,
             "ingest": IngestTaskConfig, "backfill": BackfillTaskConfig, "live": LiveTaskConfig},
}
