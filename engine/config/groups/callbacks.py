"""Schema of the ``callbacks`` group (conf/callbacks: default, minimal, none): the Lightning callbacks the
nets train with (model checkpoint, early stopping, rich progress bar, learning-rate monitor).

Each entry is generated from its frozen settings in :mod:`engine.models.settings` (``CheckpointSettings``
...), the single source of names, defaults and bounds; the train task builds ``CallbackSettings`` from the
node. No ``_target_``: the nets' training builds the Lightning objects, so config never names a class
outside engine. Tree models ignore the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config.derive import schema_from
from engine.models.settings import (
    CheckpointSettings,
    EarlyStoppingSettings,
    LrMonitorSettings,
    ProgressBarSettings,
)

ModelCheckpointConfig = schema_from(CheckpointSettings, name="ModelCheckpointConfig", build_check=True)
EarlyStoppingConfig = schema_from(EarlyStoppingSettings, name="EarlyStoppingConfig", build_check=True)
RichProgressBarConfig = schema_from(ProgressBarSettings, name="RichProgressBarConfig", build_check=True)
LrMonitorConfig = schema_from(LrMonitorSettings, name="LrMonitorConfig", build_check=True)


@dataclass
class CallbacksConfig:
    model_checkpoint: ModelCheckpointConfig = field(default_factory=ModelCheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    rich_progress_bar: RichProgressBarConfig = field(default_factory=RichProgressBarConfig)
    lr_monitor: LrMonitorConfig = field(default_factory=LrMonitorConfig)


SCHEMAS: dict[str, dict[str, type]] = {"callbacks": {"callbacks": CallbacksConfig}}
