"""Schemas of the ``task`` group: what a run does (prepare, train, explain).

The dataset keys of train and explain (``bar_size``, ``val_frac``, ``test_frac``, ``embargo``) are generated
from :class:`engine.data.dataset.DatasetSettings`, which the tasks build from them; the rest are the tasks' own.
Train and explain share the dataset keys so ``+experiment=X task=explain`` rebuilds X's dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.config.derive import schema_from
from engine.data.dataset import DatasetSettings
from engine.fields import bounded, choice, choice_items

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

SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"prepare": PrepareTaskConfig, "train": TrainTaskConfig, "explain": ExplainTaskConfig},
}
