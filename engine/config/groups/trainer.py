"""Schema of the ``trainer`` group (conf/trainer: cpu, gpu, ddp): the Lightning Trainer the nets train under.

Generated from :class:`engine.models.settings.TrainerSettings`, the single source of its fields, defaults
and bounds; the train task builds that frozen TrainerSettings from the node. Tree models ignore it.
"""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.models.settings import TrainerSettings

TrainerConfig = schema_from(TrainerSettings, name="TrainerConfig", build_check=True)

SCHEMAS: dict[str, dict[str, type]] = {"trainer": {"trainer": TrainerConfig}}
