"""Hydra sweep overrides -> Optuna distributions (the search space), and the fixed overrides every trial gets.

- ``choice(a, b, c)`` and ``a,b,c``: categorical;
- ``range(start, stop[, step])``: integers (or floats) from start up to, not including, stop, as Hydra's
  ``range`` means (the official sweeper took stop as included);
- ``interval(low, high)``: uniform floats; ``int(interval(...))`` integers; ``tag(log, interval(...))``
  log-uniform;
- ``shuffle(...)`` of a choice or range: categorical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (``override.is_sweep_override()``)."""
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        # encoded so that a string choice reads back as the same override value
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        assert start is not None and stop is not None
        if any(isinstance(v, float) for v in (start, stop, step)):
            n = math.ceil((stop - start) / step)
            return FloatDistribution(start, start + (n - 1) * step, step=step)
        last = start + ((stop - start - 1) // step) * step  # the last value below stop
        return IntDistribution(int(start), int(last), step=int(step))
    if isinstance(value, IntervalSweep):
        assert value.start is not None and value.end is not None
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can sample (choice, range or interval)")


def search_space(params: Mapping[str, Any], arguments: Iterable[str]) -> tuple[dict[str, BaseDistribution],
                                                                                 list[str]]:
    """``(distributions, fixed)`` from ``hydra.sweeper.params`` and the command line's overrides.

    A sweep on the command line replaces the configured one for the same key; a plain override on the
    command line (``+experiment=x``, ``smoke=true``, or ``key=value`` fixing a configured key) is passed to
    every trial unchanged and takes that key out of the search."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    configured: dict[str, str] = {}  # plain values in hydra.sweeper.params: fixed for every trial
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            configured[key] = override.input_line
    fixed: list[str] = []
    for override in parser.parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            space.pop(key, None)
            configured.pop(key, None)
            fixed.append(override.input_line)
    return space, [*configured.values(), *fixed]


def as_override(key: str, value: Any) -> str:
    """``key=value`` for a sampled value (categorical choices are already override-encoded strings)."""
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"
