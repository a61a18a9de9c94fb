"""Schemas of the data-transform groups: cleaner, features, labels (components in engine/data/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.fields import bounded, choice


# -- cleaner --------------------------------------------------------------------------------------
@dataclass
class CleanerConfig:
    _target_: str = "engine.data.cleaning.DataCleaner"
    enabled: bool = True
    causal: bool = True
    missing: str = choice("ffill", ("drop", "ffill"))
    max_ffill: int = bounded(3, ge=0)
    keep_duplicate: str = choice("last", ("first", "last"))
    drop_zero_volume: bool = False
    zscore: float | None = bounded(500.0, gt=0.0)
    iqr_k: float | None = bounded(None, gt=0.0)
    contamination: float | None = bounded(None, gt=0.0, le=0.5)
    window: int = bounded(1440, ge=2)
    ref_window: int = bounded(5, ge=1)
    min_scale: float = bounded(1e-4, gt=0.0)
    if_window: int = bounded(20_000, ge=10)
    if_refit: int = bounded(10_000, ge=1)
    random_state: int = bounded(0, ge=0)
    spread_mult: float | None = bounded(20.0, gt=1.0)
    assume_utc: bool = False


# Periods and windows: lists of integers >= 1 (checked by engine.config.validate).
_PERIODS = {"item_bounds": {"ge": 1}}


# -- features -------------------------------------------------------------------------------------
def _timeframes_default() -> list[str]:
    return ["1min"]


@dataclass
class FeaturesConfig:
    _target_: str = "engine.data.features.FeatureEngineering"
    # First entry = the bars' own timeframe; later ones are resampled and joined on completed bars.
    timeframes: list[str] = field(default_factory=_timeframes_default)
    rsi: list[int] = field(default_factory=lambda: [14], metadata=_PERIODS)
    ema: list[int] = field(default_factory=lambda: [20], metadata=_PERIODS)
    sma: list[int] = field(default_factory=lambda: [20], metadata=_PERIODS)
    macd: list[int] = field(default_factory=lambda: [12, 26, 9], metadata=_PERIODS)
    bbands: list[int] = field(default_factory=lambda: [20], metadata=_PERIODS)
    bb_std: float = bounded(2.0, gt=0.0)
    atr: list[int] = field(default_factory=lambda: [14], metadata=_PERIODS)
    vwap: list[int] = field(default_factory=lambda: [60], metadata=_PERIODS)
    vwap_day: bool = True
    returns: list[int] = field(default_factory=lambda: [1, 5, 15], metadata=_PERIODS)
    log_returns: list[int] = field(default_factory=lambda: [1], metadata=_PERIODS)
    volatility: list[int] = field(default_factory=lambda: [30], metadata=_PERIODS)
    volume_ratio: list[int] = field(default_factory=lambda: [60], metadata=_PERIODS)
    hl_range: bool = True
    levels: str = choice("relative", ("raw", "relative", "both"))

    @staticmethod
    def __validate__(node: Any, path: str) -> None:
        from engine.timeframes import parse

        key = f"{path}.timeframes" if path else "timeframes"
        tfs = [parse(str(t), key=key) for t in node.timeframes]
        if not tfs:
            raise ConfigError(key, "needs at least the base timeframe, e.g. [1min]")
        for tf in tfs[1:]:
            if tf.seconds <= tfs[0].seconds or tf.seconds % tfs[0].seconds:
                raise ConfigError(key, f"{tf.pandas} must be a whole multiple (> 1) of the base {tfs[0].pandas}")
        if len(node.macd) not in (0, 3):
            raise ConfigError(f"{path}.macd", f"needs [fast, slow, signal] or [], got {list(node.macd)}")
        for name in ("bbands", "volatility"):
            if any(int(p) < 2 for p in node[name]):
                raise ConfigError(f"{path}.{name}", "windows must be >= 2")


# -- labels ---------------------------------------------------------------------------------------
@dataclass
class LabelsConfig:
    _target_: str = "engine.data.labels.LabelSpec"
    horizon: int = bounded(5, ge=1)
    kind: str = choice("binary", ("binary", "ternary"))
    dead_band: float = bounded(0.0, ge=0.0)


SCHEMAS: dict[str, dict[str, type]] = {
    "cleaner": {"cleaner": CleanerConfig},
    "features": {"features": FeaturesConfig},
    "labels": {"labels": LabelsConfig},
}
