"""The ``sweep`` node: which Optuna trial a job is. Not a selectable group (no conf/sweep/); engine's Optuna
sweeper sets it on every job it launches (``sweep.trial=3 ...``); its fields stay null otherwise.

Generated from :class:`engine.tracking.studies.SweepTrial`, which the train task builds from the node."""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.tracking.studies import SweepTrial

SweepConfig = schema_from(SweepTrial, name="SweepConfig")

SCHEMAS: dict[str, dict[str, type]] = {}
