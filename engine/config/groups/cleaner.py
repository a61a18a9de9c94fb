"""Schema of the ``cleaner`` group, generated from :class:`engine.data.cleaning.DataCleaner`'s fields (their
bounds included); validating a config also constructs the cleaner, so its own rules run before any work."""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.data.cleaning import DataCleaner

CleanerConfig = schema_from(DataCleaner, target="engine.data.cleaning.DataCleaner", name="CleanerConfig",
                            build_check=True)

SCHEMAS: dict[str, dict[str, type]] = {"cleaner": {"cleaner": CleanerConfig}}
