"""The Parquet files of the clean and features stages, and the dataset read back from them; not a task.

One file per symbol and bar size (``BTCUSD_M5.parquet``): ``task=clean`` writes the cleaned bars to
``${paths.clean}``, ``task=features`` those bars with their feature columns to ``${paths.features}``. The
schema metadata (key ``engine``) records what made the file: symbol, loaded and bar timeframe, the content
hash of the bars cleaning started from, the cleaner's and the feature set's settings, the cleaning report.
``task.features_from`` hands a file to the dataset builder's last step only when that recipe equals the
run's own, so a stored dataset is always the dataset the run's config would compute.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.dataset import Dataset, DatasetBuilder
from engine.errors import ConfigError, DataQualityError, OperationalError
from engine.timeframes import Timeframe

META_KEY = b"engine"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class StoredFrame:
    path: Path
    frame: pd.DataFrame
    meta: dict[str, Any]


def stage_file(folder: str | Path, symbol: str, bar_timeframe: Timeframe) -> Path:
    """``<folder>/<symbol>_<bar size>.parquet`` (the symbol made safe for a file name)."""
    return Path(folder) / f"{_UNSAFE.sub('_', symbol)}_{bar_timeframe.mt5}.parquet"


def under_root(root: str | Path, path: str | Path) -> Path:
    """``path``, relative ones taken from the project root (``paths.root``), not from the shell's folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def write_frame(path: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> Path:
    """Write ``frame`` and ``meta`` atomically: a reader (or ``dvc commit``) never sees half a file."""
    table = pa.Table.from_pandas(frame, preserve_index=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps(meta, allow_nan=False).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_frame(path: Path, *, make: str) -> StoredFrame:
    """The frame and metadata at ``path``; a missing file says what to run (``make``) and what is there."""
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("*.parquet")) if path.parent.is_dir() else []
        there = f"{path.parent} holds {', '.join(present)}" if present else f"{path.parent} holds no Parquet file"
        raise OperationalError(f"{path} not found ({there}): {make}")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataQualityError(f"{path} was not written by the engine (no '{META_KEY.decode()}' metadata): {make}")
    return StoredFrame(path, table.to_pandas(), json.loads(raw))


def stored_dataset(folder: str | Path, symbol: str, builder: DatasetBuilder) -> Dataset:
    """The dataset ``builder`` would build, from the bars and features ``task=features`` stored in ``folder``."""
    tf = builder.bar_timeframe
    make = (f"run task=features (and task=clean before it{_bar_size_hint(tf, builder)}), or `dvc repro "
            "features`; or set task.features_from=null to compute the features in this run")
    stored = read_frame(stage_file(folder, symbol, tf), make=make)
    check_recipe(stored, symbol, builder.recipe(), make)
    meta = stored.meta
    bars = stored.frame.loc[:, list(meta["bar_columns"])]
    feats = stored.frame.loc[:, list(meta["feature_names"])]
    return builder.assemble(bars, feats, clean_report=dict(meta["clean_report"]),
                            data_fingerprint=str(meta["fingerprint"]), source=f"{stored.path} ({meta['source']})")


def _bar_size_hint(tf: Timeframe, builder: DatasetBuilder) -> str:
    return f" with task.bar_size={tf.mt5}" if tf != builder.timeframe else ""


def check_recipe(stored: StoredFrame, symbol: str, recipe: dict[str, Any], make: str) -> None:
    """Refuse a stored file made from another symbol or with other steps than ``recipe``'s."""
    wanted = {"symbol": symbol, **json.loads(json.dumps(recipe))}
    differs = [key for key, value in wanted.items() if stored.meta.get(key) != value]
    if not differs:
        return
    details = []
    for key in differs:
        have, want = stored.meta.get(key), wanted[key]
        if isinstance(have, dict) and isinstance(want, dict):
            keys = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
            details += [f"{key}.{k}={have.get(k)!r} (this run: {want.get(k)!r})" for k in keys]
        else:
            details.append(f"{key}={have!r} (this run: {want!r})")
    more = f" and {len(details) - 3} more" if len(details) > 3 else ""
    raise ConfigError("task.features_from", f"{stored.path} was made with {'; '.join(details[:3])}{more}: {make}")
