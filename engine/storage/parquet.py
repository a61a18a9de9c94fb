"""The embedded store: Parquet files under ``data/`` (DVC-tracked), one file per symbol, timeframe and month.

Layout: ``<root>/ohlcv/<SYMBOL>/<TF>/<YYYY-MM>.parquet`` and ``<root>/ticks/<SYMBOL>/<YYYY-MM-DD>.parquet``.
Monthly files keep rewrites small when new bars arrive and give DVC stable, diffable chunks. Every
file is written to a temporary name and renamed into place, so a crash mid-write never corrupts a
month that was already stored; the temporary files of a writer killed mid-write are removed by the next
writer of that folder (it holds the folder lock, so no live writer can own them). Values are validated
before anything is written (``engine.storage.validate``), and a symbol is one path component that must stay
inside ``root``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from engine import timeframes
from engine.data.frames import BAR_COLUMNS, conform_bars, conform_ticks, to_utc
from engine.errors import DataQualityError, StorageError
from engine.storage.validate import check_bars, check_ticks

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("engine.storage")
_COMPRESSION = "zstd"
_TMP = re.compile(r"^\..+\.parquet\..+\.tmp$")  # _atomic_write's names: .<file>.<random>.tmp
# Broker symbols hold letters, digits and a few marks (BTCUSD, EURUSD.m, US500#, #AAPL, BRN-SEP24); never a
# path separator or a leading dot, so a symbol names exactly one folder under the store.
_SYMBOL = re.compile(r"^[A-Za-z0-9_#+$&@!-][A-Za-z0-9_#+$&@!.-]{0,63}$")


def _safe_symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
        raise DataQualityError(f"symbol {symbol!r} is not a broker symbol (letters, digits, _ # + $ & @ ! - and "
                               "inner dots, at most 64, no path separators); nothing was written")
    return symbol


def _sweep(folder: Path) -> None:
    """Remove temporary files of writers that died mid-write; callers hold the folder's lock."""
    for stale in folder.glob(".*.tmp"):
        if _TMP.match(stale.name):
            stale.unlink(missing_ok=True)
            log.warning("storage: removed %s left by an interrupted writer", stale)


def _atomic_write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, compression=_COMPRESSION, index=True)
        with open(tmp, "rb") as fh:  # the data must be on disk before the rename makes it the month
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise read-merge-write cycles on one folder across threads and processes (parallel jobs of a
    multirun may write the same month); without it the later writer would drop the earlier one's rows."""
    folder.mkdir(parents=True, exist_ok=True)
    # The lock lives outside the data folder so DVC never sees it; same machine is the case that matters.
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    lock_dir = Path(tempfile.gettempdir()) / "engine-locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{digest}.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            _sweep(folder)
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise StorageError(f"cannot read {path}: {exc}. Restore it with `dvc checkout {path}` or delete it "
                           "and re-run the task that wrote it.") from exc


class ParquetStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"parquet:{self.root}"

    def __enter__(self) -> ParquetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; present so every store is used the same way."""

    def _inside(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        # Belt and braces after _safe_symbol: a symlinked folder must not lead out of the store either.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise DataQualityError(f"{'/'.join(parts)!r} resolves outside {self.root}; nothing was written")
        return path

    def _bar_dir(self, symbol: str, timeframe: str) -> Path:
        return self._inside("ohlcv", _safe_symbol(symbol), timeframes.parse(timeframe).mt5)

    def _tick_dir(self, symbol: str) -> Path:
        return self._inside("ticks", _safe_symbol(symbol))

    def write_bars(self, bars: pd.DataFrame, symbol: str, timeframe: str) -> int:
        bars = check_bars(bars)
        if bars.empty:
            return 0
        new_rows = 0
        months = bars.index.tz_convert(None).to_period("M")
        folder = self._bar_dir(symbol, timeframe)
        with _locked(folder):
            for month, chunk in bars.groupby(months, sort=True):
                new_rows += self._merge_month(folder / f"{month}.parquet", chunk)
        return new_rows

    @staticmethod
    def _merge_month(path: Path, chunk: pd.DataFrame) -> int:
        import pandas as pd

        if path.exists():
            old = _read(path)
            new_rows = int((~chunk.index.isin(old.index)).sum())
            # A re-sent bar replaces the stored one: the broker may correct a bar after the fact.
            merged = pd.concat([old.loc[~old.index.isin(chunk.index)], chunk]).sort_index()
        else:
            new_rows, merged = len(chunk), chunk
        _atomic_write(merged, path)
        return new_rows

    def read_bars(self, symbol: str, timeframe: str, start: pd.Timestamp | str | None = None,
                  end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        import pandas as pd

        folder = self._bar_dir(symbol, timeframe)
        files = sorted(folder.glob("*.parquet"))
        lo = to_utc(start) if start is not None else None
        hi = to_utc(end) if end is not None else None
        keep = []
        for path in files:
            month = pd.Period(path.stem, freq="M")
            if lo is not None and month.end_time.tz_localize("UTC") < lo:
                continue
            if hi is not None and month.start_time.tz_localize("UTC") >= hi:
                continue
            keep.append(_read(path))
        if not keep:
            empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                                 index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
            return empty
        bars = pd.concat(keep).sort_index()
        if lo is not None:
            bars = bars.loc[bars.index >= lo]
        if hi is not None:
            bars = bars.loc[bars.index < hi]
        return conform_bars(bars)

    def latest_bar_time(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        files = sorted(self._bar_dir(symbol, timeframe).glob("*.parquet"))
        if not files:
            return None
        last = _read(files[-1])
        return None if last.empty else last.index.max()

    def latest_tick_time(self, symbol: str) -> pd.Timestamp | None:
        files = sorted(self._tick_dir(symbol).glob("*.parquet"))
        if not files:
            return None
        last = _read(files[-1])
        return None if last.empty else last.index.max()

    def last_timestamp(self, symbol: str, timeframe: str | None = None) -> pd.Timestamp | None:
        """Newest stored tick time (``timeframe=None``) or bar open time; None when nothing is stored."""
        return self.latest_tick_time(symbol) if timeframe is None else self.latest_bar_time(symbol, timeframe)

    def write_ticks(self, ticks: pd.DataFrame, symbol: str) -> int:
        import pandas as pd

        ticks = check_ticks(ticks)
        if ticks.empty:
            return 0
        new_rows = 0
        days = ticks.index.tz_convert(None).normalize()
        folder = self._tick_dir(symbol)
        with _locked(folder):
            for day, chunk in ticks.groupby(days, sort=True):
                path = folder / f"{day:%Y-%m-%d}.parquet"
                old = _read(path) if path.exists() else chunk.iloc[:0]
                merged = pd.concat([old, chunk])
                dup = merged.reset_index().duplicated(keep="first").to_numpy()
                merged = merged.loc[~dup].sort_index(kind="stable")
                new_rows += len(merged) - len(old)
                _atomic_write(merged, path)
        return new_rows

    def read_ticks(self, symbol: str, start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        import pandas as pd

        files = sorted(self._tick_dir(symbol).glob("*.parquet"))
        # One file a UTC day: only the days the range touches are read (a resume reads one second).
        first = to_utc(start).floor("D") if start is not None else None
        last = to_utc(end) if end is not None else None
        frames = [_read(p) for p in files
                  if (first is None or pd.Timestamp(p.stem, tz="UTC") >= first)
                  and (last is None or pd.Timestamp(p.stem, tz="UTC") < last)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in ("bid", "ask", "volume")},
                                index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
        ticks = pd.concat(frames).sort_index(kind="stable")
        if start is not None:
            ticks = ticks.loc[ticks.index >= to_utc(start)]
        if end is not None:
            ticks = ticks.loc[ticks.index < to_utc(end)]
        return conform_ticks(ticks)
