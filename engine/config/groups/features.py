"""Schema of the ``features`` group, generated from :class:`engine.data.features.FeatureEngineering`'s fields;
validating a config also constructs the feature set, so its timeframe and MACD rules run before any work."""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.data.features import FeatureEngineering

FeaturesConfig = schema_from(FeatureEngineering, target="engine.data.features.FeatureEngineering",
                             name="FeaturesConfig", build_check=True)

SCHEMAS: dict[str, dict[str, type]] = {"features": {"features": FeaturesConfig}}
