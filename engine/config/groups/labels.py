"""Schema of the ``labels`` group, generated from :class:`engine.data.labels.LabelSpec`."""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.data.labels import LabelSpec

LabelsConfig = schema_from(LabelSpec, target="engine.data.labels.LabelSpec", name="LabelsConfig", build_check=True)

SCHEMAS: dict[str, dict[str, type]] = {"labels": {"labels": LabelsConfig}}
