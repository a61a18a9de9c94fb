"""The write paths of the PostgreSQL/TimescaleDB store, inside one caller-owned transaction.

A batch for one series (a symbol's ticks, or a symbol's bars of one timeframe) takes a transaction-scoped
advisory lock on that series and reads the series' newest stored time from ``series_heads``. It splits the
batch there:

- rows newer than everything stored cannot be stored already, so they go straight into the table with binary
  COPY (the append-only path: live ingestion is almost always all of a batch);
- rows at or before it (a retried batch, an overlapping fetch, a backfill) are checked against the rows
  stored in the batch's time range, read back with binary COPY and matched in numpy; only rows not stored yet
  are copied in, and stored bars whose values changed (a broker correcting a bar) are updated.

Under the lock no other writer of the series can interleave, so this keeps each row once without a unique
index (whose upkeep would cost about three times the COPY). Rows arrive validated and time-sorted.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from engine.storage import pgcopy
from engine.storage.pgschema import BAR_COLS, HEADS, OHLCV, TICK_COLS, TICKS

_COPY_BUF = 1 << 20  # bytes per write to the socket; psycopg2's 8 KiB default costs a syscall per few rows
_PRICES = ("open", "high", "low", "close", "volume")
_QUOTE = ("bid", "ask", "volume")


def _micros(index: pd.DatetimeIndex) -> np.ndarray:
    return pd.DatetimeIndex(index).tz_convert("UTC").as_unit("us").asi8


def _stamp(us: int) -> object:
    return pd.Timestamp(int(us), unit="us", tz="UTC").to_pydatetime()


def _series(table: str, symbol: str, timeframe: str) -> sql.Composable:
    where = sql.SQL("symbol = {s}").format(s=sql.Literal(symbol))
    if table == OHLCV:
        where = sql.SQL("{w} AND timeframe = {tf}").format(w=where, tf=sql.Literal(timeframe))
    return where


def head(cur: Cursor, table: str, symbol: str, timeframe: str) -> int | None:
    """Newest stored time of the series in microseconds; from the data itself the first time (old tables)."""
    cur.execute(sql.SQL("SELECT (extract(epoch FROM last_ts) * 1000000)::bigint FROM {h} "
                        "WHERE tbl = %s AND symbol = %s AND timeframe = %s").format(h=sql.Identifier(HEADS)),
                (table, symbol, timeframe))
    row = cur.fetchone()
    if row is not None:
        return int(row[0])
    cur.execute(sql.SQL("SELECT (extract(epoch FROM max(timestamp)) * 1000000)::bigint FROM {t} WHERE {w}")
                .format(t=sql.Identifier(table), w=_series(table, symbol, timeframe)))
    (last,) = cur.fetchone()
    return None if last is None else int(last)


def _set_head(cur: Cursor, table: str, symbol: str, timeframe: str, last_us: int) -> None:
    cur.execute(sql.SQL("INSERT INTO {h} AS h (tbl, symbol, timeframe, last_ts) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (tbl, symbol, timeframe) DO UPDATE SET last_ts = greatest(h.last_ts, "
                        "EXCLUDED.last_ts)").format(h=sql.Identifier(HEADS)),
                (table, symbol, timeframe, _stamp(last_us)))


def _copy_in(cur: Cursor, table: str, columns: tuple[str, ...], fields: list[pgcopy.Column], rows: int) -> None:
    statement = sql.SQL("COPY {t} ({c}) FROM STDIN WITH (FORMAT binary)").format(
        t=sql.Identifier(table), c=sql.SQL(", ").join(map(sql.Identifier, columns)))
    cur.copy_expert(statement, pgcopy.encode(fields, rows), size=_COPY_BUF)


def _stored(cur: Cursor, table: str, symbol: str, timeframe: str, values: tuple[str, ...],
            lo_us: int, hi_us: int) -> dict[str, np.ndarray]:
    """The series' stored rows with ``lo <= timestamp <= hi``: ``us`` and the ``values`` columns."""
    query = sql.SQL("COPY (SELECT timestamp, {v} FROM {t} WHERE {w} AND timestamp BETWEEN {lo} AND {hi}) "
                    "TO STDOUT WITH (FORMAT binary)").format(
        v=sql.SQL(", ").join(map(sql.Identifier, values)), t=sql.Identifier(table),
        w=_series(table, symbol, timeframe), lo=sql.Literal(_stamp(lo_us)), hi=sql.Literal(_stamp(hi_us)))
    buf = io.BytesIO()
    cur.copy_expert(query, buf)
    cols = pgcopy.decode(buf.getvalue(), ("timestamptz",) + ("float8",) * len(values))
    return {"us": cols["c0"].astype("int64"), **{v: cols[f"c{i + 1}"] for i, v in enumerate(values)}}


def _keys(us: np.ndarray, *floats: np.ndarray) -> np.ndarray:
    """Rows as int64 words (time, then each float's bits; + 0.0 folds -0.0 into 0.0 as SQL equality does)."""
    out = np.empty((len(us), 1 + len(floats)), dtype=np.int64)
    out[:, 0] = us
    for i, col in enumerate(floats, start=1):
        out[:, i] = (np.asarray(col, dtype="float64") + 0.0).view(np.int64)
    return out


def _row_hash(keys: np.ndarray) -> np.ndarray:
    h = np.zeros(len(keys), dtype=np.uint64)
    for j in range(keys.shape[1]):
        h = (h * np.uint64(0x100000001B3)) ^ pd.util.hash_array(keys[:, j])
    return h


def _hashed_absent(batch: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Mask of ``batch`` rows absent from ``stored`` by row hash, verified word by word (exact)."""
    hs = _row_hash(stored)
    order = np.argsort(hs, kind="stable")
    hs, stored = hs[order], stored[order]
    hb = _row_hash(batch)
    pos = np.minimum(np.searchsorted(hs, hb), len(hs) - 1)
    same_hash = hs[pos] == hb
    found = same_hash & (stored[pos] == batch).all(axis=1)
    for i in np.flatnonzero(same_hash & ~found):  # a hash shared by other rows: compare with all of them
        lo, hi = np.searchsorted(hs, hb[i], "left"), np.searchsorted(hs, hb[i], "right")
        found[i] = bool((stored[lo:hi] == batch[i]).all(axis=1).any())
    return ~found


def not_stored(batch: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Mask of ``batch`` rows (int64 key words, time first) that are absent from ``stored``; exact.

    Matched by time first: both sides arrive nearly time-sorted (the stable sort of a sorted array is linear),
    a row whose microsecond holds one stored row is compared with that row directly, and only rows sharing
    their microsecond with several stored ones go through the row hash."""
    if len(stored) == 0 or len(batch) == 0:
        return np.ones(len(batch), dtype=bool)
    stored = stored[np.argsort(stored[:, 0], kind="stable")]
    lo = np.searchsorted(stored[:, 0], batch[:, 0], "left")
    count = np.searchsorted(stored[:, 0], batch[:, 0], "right") - lo
    found = np.zeros(len(batch), dtype=bool)
    single = np.flatnonzero(count == 1)
    found[single] = (stored[lo[single]] == batch[single]).all(axis=1)
    many = np.flatnonzero(count > 1)
    if len(many):
        lens, starts = count[many], lo[many]
        # Every stored row in those microseconds, gathered in one go (ranges concatenated).
        rows = np.repeat(starts - np.cumsum(np.r_[0, lens[:-1]]), lens) + np.arange(lens.sum())
        found[many] = ~_hashed_absent(batch[many], stored[rows])
    return ~found


def distinct_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
    """Identical rows (at microsecond precision, the store's) once; order kept. Cheap when no time repeats."""
    us = _micros(ticks.index)
    if len(us) < 2 or not (np.diff(us) == 0).any():
        return ticks
    keys = pd.DataFrame(_keys(us, *(ticks[c].to_numpy() for c in _QUOTE)))
    return ticks.loc[~keys.duplicated().to_numpy()]


def _tick_fields(symbol: str, ticks: pd.DataFrame) -> list[pgcopy.Column]:
    return [pgcopy.Column("text", symbol), pgcopy.Column("timestamptz", ticks.index),
            *(pgcopy.Column("float8", ticks[c].to_numpy() + 0.0) for c in _QUOTE)]


def _bar_fields(symbol: str, timeframe: str, bars: pd.DataFrame) -> list[pgcopy.Column]:
    return [pgcopy.Column("text", symbol), pgcopy.Column("timestamptz", bars.index),
            *(pgcopy.Column("float8", bars[c].to_numpy()) for c in _PRICES), pgcopy.Column("text", timeframe)]


def _split(cur: Cursor, table: str, symbol: str, timeframe: str, us: np.ndarray,
           append_only: bool | None) -> tuple[np.ndarray, int | None]:
    """Lock the series; mask of rows newer than its head (all False when the check is forced), and the head."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"engine:{table}:{symbol}:{timeframe}",))
    last = head(cur, table, symbol, timeframe)
    newer = np.ones(len(us), dtype=bool) if last is None else us > last
    if append_only is False:
        newer[:] = False
    return newer, last


def write_ticks(cur: Cursor, symbol: str, ticks: pd.DataFrame, *, append_only: bool | None = None) -> int:
    """Store validated, time-sorted ticks of one symbol; returns how many were new.

    ``append_only=False`` sends every row through the check (the benchmark measures that path with it)."""
    ticks = distinct_ticks(ticks)
    if ticks.empty:
        return 0
    us = _micros(ticks.index)
    newer, _ = _split(cur, TICKS, symbol, "", us, append_only)
    keep = newer.copy()
    if not newer.all():
        old = ~newer
        stored = _stored(cur, TICKS, symbol, "", _QUOTE, int(us[old].min()), int(us[old].max()))
        keep[old] = not_stored(_keys(us[old], *(ticks[c].to_numpy()[old] for c in _QUOTE)),
                               _keys(stored["us"], *(stored[c] for c in _QUOTE)))
    fresh = ticks.loc[keep]
    if len(fresh):
        _copy_in(cur, TICKS, TICK_COLS, _tick_fields(symbol, fresh), len(fresh))
        _set_head(cur, TICKS, symbol, "", int(us[keep].max()))
    return len(fresh)


def write_bars(cur: Cursor, symbol: str, timeframe: str, bars: pd.DataFrame, *,
               append_only: bool | None = None) -> int:
    """Store validated bars of one series; a stored bar with other values is replaced. Returns new rows."""
    if bars.empty:
        return 0
    us = _micros(bars.index)
    newer, _ = _split(cur, OHLCV, symbol, timeframe, us, append_only)
    keep = newer.copy()
    if not newer.all():
        old = np.flatnonzero(~newer)
        stored = _stored(cur, OHLCV, symbol, timeframe, _PRICES, int(us[old].min()), int(us[old].max()))
        order = np.argsort(stored["us"], kind="stable")
        at = np.minimum(np.searchsorted(stored["us"][order], us[old]), max(len(order) - 1, 0))
        found = (stored["us"][order][at] == us[old]) if len(order) else np.zeros(len(old), dtype=bool)
        keep[old[~found]] = True
        same = _keys(us[old], *(bars[c].to_numpy()[old] for c in _PRICES))
        was = _keys(stored["us"][order][at], *(stored[c][order][at] for c in _PRICES)) if len(order) else same
        changed = old[found & ~(same == was).all(axis=1)]
        if len(changed):
            _replace_bars(cur, symbol, timeframe, bars.iloc[changed])
    fresh = bars.loc[keep]
    if len(fresh):
        _copy_in(cur, OHLCV, BAR_COLS, _bar_fields(symbol, timeframe, fresh), len(fresh))
        _set_head(cur, OHLCV, symbol, timeframe, int(us[keep].max()))
    return len(fresh)


def _replace_bars(cur: Cursor, symbol: str, timeframe: str, bars: pd.DataFrame) -> None:
    """Overwrite stored bars with corrected values, through a session temp table emptied at commit."""
    stage = sql.Identifier("engine_stage_ohlcv")
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {s} (LIKE {t}) ON COMMIT DELETE ROWS")
                .format(s=stage, t=sql.Identifier(OHLCV)))
    _copy_in(cur, "engine_stage_ohlcv", BAR_COLS, _bar_fields(symbol, timeframe, bars), len(bars))
    lo, hi = _micros(bars.index).min(), _micros(bars.index).max()
    cur.execute(sql.SQL("UPDATE {t} t SET {set} FROM {s} s WHERE t.symbol = s.symbol AND t.timeframe = s.timeframe "
                        "AND t.timestamp = s.timestamp AND t.timestamp BETWEEN %s AND %s").format(
        t=sql.Identifier(OHLCV), s=stage,
        set=sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in _PRICES)),
        (_stamp(lo), _stamp(hi)))
