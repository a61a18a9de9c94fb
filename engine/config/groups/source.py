"""Schemas of the ``source`` group: where bars come from (csv and the bundled sample, a store). The schemas
are generated from the sources' own dataclasses; ``source=mt5`` lives with the connector
(``engine.config.groups.connector``).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from engine.config.derive import schema_from
from engine.errors import ConfigError
from engine.fields import choice
from engine.sources.csv import CsvBarSource
from engine.sources.store import StoreBarSource
from engine.timeframes import NAMES as TIMEFRAMES

# Constraint metadata only (the default stays the source's): config names MT5 timeframes.
_TIMEFRAME = dict(choice(None, TIMEFRAMES).metadata)


def _utc(node: DictConfig, path: str, name: str) -> object | None:
    import pandas as pd

    if name not in node or OmegaConf.is_missing(node, name) or node[name] is None:
        return None
    text = str(node[name])
    try:
        ts = pd.Timestamp(text)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{path}.{name}", f"{text!r} is not a date/time ({exc}); use ISO 8601 such as "
                                            "2024-03-01 or 2024-03-01T00:00Z (UTC unless a zone is given)") from None
    if ts is pd.NaT:
        raise ConfigError(f"{path}.{name}", f"{text!r} is not a date/time; use ISO 8601 such as 2024-03-01")
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def check_time_range(node: DictConfig, path: str) -> None:
    """``start`` and ``end`` read as UTC times (naive = UTC, as the sources read them), start before end."""
    start, end = _utc(node, path, "start"), _utc(node, path, "end")
    if start is not None and end is not None and not start < end:
        raise ConfigError(f"{path}.end", f"end {node.end} must be after start {node.start}")


CsvSourceConfig = schema_from(CsvBarSource, target="engine.sources.csv.CsvBarSource", name="CsvSourceConfig",
                              meta={"timeframe": _TIMEFRAME}, check=check_time_range)
StoreSourceConfig = schema_from(StoreBarSource, target="engine.sources.store.StoreBarSource",
                                name="StoreSourceConfig", check=check_time_range)

SCHEMAS: dict[str, dict[str, type]] = {"source": {"csv": CsvSourceConfig, "store": StoreSourceConfig}}
