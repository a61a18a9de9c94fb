"""Schema of the ``tracking`` node, generated from :class:`engine.tracking.mlflow.TrackingSettings` plus the
keys only the task layer reads. The defaults are config-level: they point into the project (``paths.root``)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.derive import schema_from
from engine.tracking.mlflow import TrackingSettings


@dataclass
class _TaskLayerKeys:
    log_config: bool = True  # the composed config YAML as a run artifact


TrackingConfig = schema_from(
    TrackingSettings, name="TrackingConfig", extra=_TaskLayerKeys,
    defaults={
        "enabled": True,
        # MLflow 3's default local backend is SQLite; keep it in the project so the UI finds every run.
        "uri": "sqlite:///${paths.root}/mlflow.db",
        "artifact_root": "${paths.root}/mlartifacts",
        "experiment": "engine-${task.name}",
    },
)

SCHEMAS: dict[str, dict[str, type]] = {"tracking": {"tracking": TrackingConfig}}
