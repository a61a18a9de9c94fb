"""Grid search bookkeeping for ``MLPipeline.tune``: the combinations of a grid and the best of their scores."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import ConfigError, DataQualityError
from engine.metrics import GREATER_IS_BETTER, METRIC_NAMES


def grid_combinations(param_grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, keys in sorted order (a stable, reportable order)."""
    if not param_grid or any(len(list(v)) == 0 for v in param_grid.values()):
        raise ConfigError("param_grid", "needs at least one key with at least one value")
    keys = sorted(param_grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(param_grid[k] for k in keys))]


def check_metric(metric: str) -> None:
    if metric not in METRIC_NAMES:
        raise ConfigError("tune.metric", f"unknown metric {metric!r}; choose one of {list(METRIC_NAMES)}")


def split_combo(combo: Mapping[str, Any], trainer_keys: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer settings part, model params part) of one combination."""
    return ({k: v for k, v in combo.items() if k in trainer_keys},
            {k: v for k, v in combo.items() if k not in trainer_keys})


def best_result(results: Sequence[Mapping[str, Any]], metric: str) -> tuple[float, dict[str, Any]]:
    """(score, params) of the best result; NaN scores (undefined metric) never win."""
    greater = GREATER_IS_BETTER[metric]
    best: tuple[float, dict[str, Any]] | None = None
    for row in results:
        score = row["score"]
        if math.isnan(score):
            continue
        if best is None or (score > best[0] if greater else score < best[0]):
            best = (score, dict(row["params"]))
    if best is None:
        raise DataQualityError(f"cv_{metric} is undefined for every combination (too few classes per fold?)")
    return best
