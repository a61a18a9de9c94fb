"""PostgreSQL/TimescaleDB store: ``ticks`` and ``ohlcv`` tables, hypertables where the extension exists.

Every write is one transaction: values are validated first (``engine.storage.validate``), then the batch goes
in with binary COPY, straight into the table when all of it is newer than what is stored and through a
staging anti-join otherwise (``engine.storage.pgwrite``). A batch is therefore atomic (all rows or none) and
idempotent (re-sent rows are stored once), so when the connection drops the client reconnects with backoff
and sends the whole batch again. SSL is required unless the caller lowers ``sslmode`` explicitly; with
``sslmode=verify-full`` and ``sslrootcert`` the server's certificate and name are checked against that CA.
The password is kept out of ``repr`` and of every error message. A client is one connection: give each
thread its own (the ingestor's thread and a reader beside it use two clients).
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from engine import timeframes
from engine.data.frames import to_utc
from engine.errors import OperationalError, RetryableError, StorageError
from engine.storage.validate import check_bars, check_ticks

# psycopg2, pandas and the SQL modules load when the client first needs them: the storage config schema is
# generated from this class's constructor, and `python -m engine --cfg job` must not pay for them.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import psycopg2.extensions
    from psycopg2 import sql

    from engine.storage.pgschema import Features

    _Stamp = pd.Timestamp | str | None

log = logging.getLogger("engine.storage")
T = TypeVar("T")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _interval(value: str, key: str) -> str:
    import pandas as pd

    try:
        seconds = pd.Timedelta(str(value)).total_seconds()
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise OperationalError(f"storage.{key}={value!r} is not a positive duration (e.g. '1 day', '12 hours')")
    return f"{int(seconds)} seconds"


class TimescaleDBClient:
    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *,
                 sslmode: str = "require", sslrootcert: str | None = None, connect_timeout: int = 10,
                 statement_timeout_ms: int = 300_000, chunk_interval: str = "7 days",
                 tick_chunk_interval: str = "1 day", compress_after: str | None = "7 days",
                 tick_retention: str | None = None, retries: int = 3, retry_base: float = 0.5,
                 retry_cap: float = 5.0) -> None:
        from engine.storage.pgschema import Layout

        if sslmode not in _SSLMODES:
            raise OperationalError(f"storage.sslmode={sslmode!r} is not one of {', '.join(_SSLMODES)}")
        self.host, self.port, self.dbname, self.user = host, int(port), dbname, user
        self.sslmode = sslmode
        self._params: dict[str, Any] = {
            "host": host, "port": int(port), "dbname": dbname, "user": user, "password": password,
            "sslmode": sslmode, "connect_timeout": int(connect_timeout),
            # UTC so that any text the server renders is zone-free; reads and writes use binary anyway.
            "options": f"-c statement_timeout={int(statement_timeout_ms)} -c TimeZone=UTC",
            "application_name": "engine",
        }
        if sslrootcert:
            self._params["sslrootcert"] = sslrootcert
        self.layout = Layout(
            bar_chunk=_interval(chunk_interval, "chunk_interval"),
            tick_chunk=_interval(tick_chunk_interval, "tick_chunk_interval"),
            compress_after=_interval(compress_after, "compress_after") if compress_after else None,
            tick_retention=_interval(tick_retention, "tick_retention") if tick_retention else None)
        self.retries, self.retry_base, self.retry_cap = int(retries), float(retry_base), float(retry_cap)
        self._conn: psycopg2.extensions.connection | None = None
        self.features: Features | None = None
        self.reconnects = 0

    @property
    def hypertables(self) -> bool | None:
        """True when the tables are TimescaleDB hypertables; None until the schema has been checked."""
        return None if self.features is None else self.features.timescaledb

    def __repr__(self) -> str:
        return (f"TimescaleDBClient(host={self.host!r}, port={self.port}, dbname={self.dbname!r}, "
                f"user={self.user!r}, sslmode={self.sslmode!r})")

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def __enter__(self) -> TimescaleDBClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -------------------------------------------------------------------------------
    def _connection(self) -> psycopg2.extensions.connection:
        import psycopg2

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(**self._params)
            except psycopg2.OperationalError as exc:
                raise _connect_error(exc, self.describe()) from None
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg2.extensions.cursor]:
        """One transaction: committed when the block ends, rolled back (nothing written) when it raises."""
        import psycopg2

        conn = self._connection()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException as exc:
            self._abandon(conn)
            if isinstance(exc, _transient()):
                raise RetryableError(f"{self.describe()}: connection lost or transaction aborted "
                                     f"({_first_line(exc)}); nothing was written by this call, retry it") from None
            if isinstance(exc, psycopg2.Error):
                raise StorageError(f"{self.describe()}: {_first_line(exc)}; nothing was written by this call") from None
            raise

    def _abandon(self, conn: psycopg2.extensions.connection) -> None:
        import psycopg2

        try:
            conn.rollback()
        except psycopg2.Error:  # the connection is gone; the server rolled the transaction back itself
            conn.close()

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call`` (one whole transaction) again after a dropped connection, with capped backoff."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except RetryableError as exc:
                if attempt == self.retries:
                    raise
                delay = min(self.retry_cap, self.retry_base * 2 ** attempt) * (0.5 + random.random() / 2)
                log.warning("storage: %s failed (%s); reconnecting in %.1fs (attempt %d of %d)", what, exc,
                            delay, attempt + 1, self.retries)
                self.close()
                self.reconnects += 1
                time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    # -- schema -----------------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create what is missing (idempotent; read-only when the tables exist) and log what the server offers."""
        from engine.storage.pgschema import ensure_schema

        def run() -> Features:
            with self._tx() as cur:
                return ensure_schema(cur, self.layout)
        self.features = self._retrying("create_schema", run)

    def _features(self) -> Features:
        from engine.storage.pgschema import detect

        if self.features is None:
            def run() -> Features:
                with self._tx() as cur:
                    return detect(cur)
            self.features = self._retrying("detect", run)
        return self.features

    # -- writes -----------------------------------------------------------------------------------
    def insert_ohlcv(self, bars: pd.DataFrame, symbol: str, timeframe: str, *,
                     append_only: bool | None = None) -> int:
        """Upsert bars; returns the number of rows that were not stored before."""
        from engine.storage import pgwrite

        bars = check_bars(bars)
        if bars.empty:
            return 0
        tf = timeframes.parse(timeframe).mt5

        def run() -> int:
            with self._tx() as cur:
                return pgwrite.write_bars(cur, symbol, tf, bars, append_only=append_only)
        return self._retrying("insert_ohlcv", run)

    def write_bars(self, bars: pd.DataFrame, symbol: str, timeframe: str) -> int:
        return self.insert_ohlcv(bars, symbol, timeframe)

    def insert_ticks(self, ticks: pd.DataFrame | Iterable[Mapping[str, Any]], symbol: str | None = None, *,
                     append_only: bool | None = None) -> int:
        """Insert ticks (a frame, or dicts with ``symbol, timestamp, bid, ask, volume``); identical rows are
        stored once. Returns the number of new rows. Every symbol's rows are checked before any is written."""
        import pandas as pd

        from engine.storage import pgwrite

        frame = ticks if isinstance(ticks, pd.DataFrame) else _ticks_from_records(ticks)
        if "timestamp" in frame.columns:
            frame = frame.set_index(pd.to_datetime(frame["timestamp"], utc=True)).drop(columns="timestamp")
        if symbol is None and "symbol" not in frame.columns:
            raise StorageError("insert_ticks needs symbol=... or a 'symbol' column")
        groups = [(symbol, frame)] if symbol is not None else list(frame.groupby("symbol", sort=False))
        checked = [(str(sym), check_ticks(part)) for sym, part in groups]

        def run() -> int:
            with self._tx() as cur:
                return sum(pgwrite.write_ticks(cur, sym, part, append_only=append_only) for sym, part in checked)
        return self._retrying("insert_ticks", run)

    def write_ticks(self, ticks: pd.DataFrame, symbol: str) -> int:
        return self.insert_ticks(ticks, symbol)

    # -- reads ------------------------------------------------------------------------------------
    def _copy_out(self, what: str, query: sql.Composable, names: tuple[str, ...]) -> pd.DataFrame:
        """The rows of ``query`` (a timestamp, then float columns ``names``) through binary COPY, as a frame."""
        from psycopg2 import sql

        from engine.storage import pgcopy

        def run() -> bytes:
            buf = io.BytesIO()
            with self._tx() as cur:
                cur.copy_expert(sql.SQL("COPY ({q}) TO STDOUT WITH (FORMAT binary)").format(q=query), buf)
            return buf.getvalue()
        return _frame(pgcopy.decode(self._retrying(what, run), ("timestamptz",) + ("float8",) * len(names)), names)

    def fetch_ohlcv(self, symbol: str, start: _Stamp = None, end: _Stamp = None, timeframe: str = "M1") -> pd.DataFrame:
        """Bars with ``start <= timestamp < end`` (either bound optional), oldest first."""
        names = ("open", "high", "low", "close", "volume")
        return self._copy_out("fetch_ohlcv", _bars_query(symbol, timeframes.parse(timeframe).mt5, names, start, end),
                              names)

    def read_bars(self, symbol: str, timeframe: str, start: _Stamp = None, end: _Stamp = None) -> pd.DataFrame:
        return self.fetch_ohlcv(symbol, start, end, timeframe)

    def fetch_ticks(self, symbol: str, start: _Stamp = None, end: _Stamp = None) -> pd.DataFrame:
        """Ticks with ``start <= timestamp < end``, by time (ties by price: arrival order is not stored)."""
        return self._copy_out("fetch_ticks", _ticks_query(symbol, start, end), ("bid", "ask", "volume"))

    def read_ticks(self, symbol: str, start: _Stamp = None, end: _Stamp = None) -> pd.DataFrame:
        return self.fetch_ticks(symbol, start, end)

    def last_timestamp(self, symbol: str, timeframe: str | None = None) -> pd.Timestamp | None:
        """Newest stored tick time (``timeframe=None``) or bar open time of ``symbol``; None when empty.

        Read from ``series_heads`` (one row per series, kept in the writing transaction), so it costs the
        same however much is stored."""
        import pandas as pd

        from engine.storage import pgwrite
        from engine.storage.pgschema import OHLCV, TICKS

        table, tf = (TICKS, "") if timeframe is None else (OHLCV, timeframes.parse(timeframe).mt5)

        def run() -> int | None:
            with self._tx() as cur:
                return pgwrite.head(cur, table, symbol, tf)
        latest = self._retrying("last_timestamp", run)
        return None if latest is None else pd.Timestamp(latest, unit="us", tz="UTC")

    def latest_bar_time(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        return self.last_timestamp(symbol, timeframe)

    def bars_from_ticks(self, symbol: str, timeframe: str, start: _Stamp, end: _Stamp, *,
                        volume: str = "tick") -> pd.DataFrame:
        """Bid bars computed in the database from stored ticks in ``[start, end)``: ``time_bucket`` on
        TimescaleDB, ``date_bin`` on plain PostgreSQL. ``volume='tick'`` counts ticks (MT5's tick volume);
        ``'real'`` sums their volume. Ticks sharing a microsecond have no stored order, so such a tie at a bar's
        edge may pick either as open/close."""
        tf = timeframes.parse(timeframe)
        if tf.mt5 == "MN1":
            raise OperationalError("bars_from_ticks needs a fixed-length timeframe (M1..W1), not MN1")
        if volume not in ("tick", "real"):
            raise OperationalError(f"volume={volume!r}: use 'tick' or 'real'")
        query = _bucket_query(self._features(), symbol, tf.seconds, start, end, volume)
        return self._copy_out("bars_from_ticks", query, ("open", "high", "low", "close", "volume"))


# -- SQL (psycopg2 loads here, on first use) --------------------------------------------------------------
def _bars_query(symbol: str, timeframe: str, names: tuple[str, ...], start: _Stamp, end: _Stamp) -> sql.Composable:
    from psycopg2 import sql

    from engine.storage.pgschema import OHLCV

    return sql.SQL("SELECT timestamp, {c} FROM {t} WHERE symbol = {s} AND timeframe = {tf}{w} ORDER BY timestamp"
                   ).format(c=sql.SQL(", ").join(map(sql.Identifier, names)), t=sql.Identifier(OHLCV),
                            s=sql.Literal(symbol), tf=sql.Literal(timeframe), w=_window(start, end))


def _ticks_query(symbol: str, start: _Stamp, end: _Stamp) -> sql.Composable:
    from psycopg2 import sql

    from engine.storage.pgschema import TICKS

    return sql.SQL("SELECT timestamp, bid, ask, volume FROM {t} WHERE symbol = {s}{w} "
                   "ORDER BY timestamp, bid, ask, volume").format(t=sql.Identifier(TICKS), s=sql.Literal(symbol),
                                                                  w=_window(start, end))


def _bucket_query(feats: Features, symbol: str, seconds: int, start: _Stamp, end: _Stamp,
                  volume: str) -> sql.Composable:
    """Bid bars of ``seconds`` from stored ticks: the 1-minute continuous aggregate where it serves, else
    ``time_bucket`` (TimescaleDB) or ``date_bin`` (plain PostgreSQL) over the ticks."""
    from psycopg2 import sql

    from engine.storage.pgschema import CAGG, TICKS

    vol = sql.SQL("count(*)::float8" if volume == "tick" else "sum(volume)")
    width, origin = f"{seconds} seconds", sql.Literal("2000-01-03T00:00:00+00:00")  # a Monday, as MT5's W1
    where = {"s": sql.Literal(symbol), "x": _window(start, end)}
    if feats.community and volume == "tick" and seconds % 60 == 0:
        # The continuous aggregate already holds one-minute bars (real-time: unmaterialised rows included).
        return sql.SQL("SELECT time_bucket({w}::interval, timestamp, {o}::timestamptz) AS b, first(open, timestamp), "
                       "max(high), min(low), last(close, timestamp), sum(volume) FROM {v} WHERE symbol = {s}{x} "
                       "GROUP BY b ORDER BY b").format(v=sql.Identifier(CAGG), w=sql.Literal(width), o=origin,
                                                      **where)
    if feats.timescaledb:
        return sql.SQL("SELECT time_bucket({w}::interval, timestamp, {o}::timestamptz) AS b, first(bid, timestamp), max(bid), "
                       "min(bid), last(bid, timestamp), {vol} FROM {t} WHERE symbol = {s}{x} GROUP BY b ORDER BY b"
                       ).format(t=sql.Identifier(TICKS), w=sql.Literal(width), o=origin, vol=vol, **where)
    return sql.SQL("SELECT date_bin({w}::interval, timestamp, {o}::timestamptz) AS b, "
                   "(array_agg(bid ORDER BY timestamp))[1], max(bid), min(bid), "
                   "(array_agg(bid ORDER BY timestamp DESC))[1], {vol} FROM {t} WHERE symbol = {s}{x} "
                   "GROUP BY b ORDER BY b").format(t=sql.Identifier(TICKS), w=sql.Literal(width), o=origin,
                                                  vol=vol, **where)


def _window(start: _Stamp, end: _Stamp) -> sql.Composable:
    from psycopg2 import sql

    parts: list[sql.Composable] = []
    if start is not None:
        parts.append(sql.SQL(" AND timestamp >= {}").format(sql.Literal(to_utc(start).to_pydatetime())))
    if end is not None:
        parts.append(sql.SQL(" AND timestamp < {}").format(sql.Literal(to_utc(end).to_pydatetime())))
    return sql.Composed(parts)


def _frame(cols: dict[str, np.ndarray], names: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    index = pd.DatetimeIndex(cols["c0"], name="timestamp").tz_localize("UTC")
    return pd.DataFrame({n: cols[f"c{i + 1}"] for i, n in enumerate(names)}, index=index)


def _ticks_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(list(records))
    if frame.empty:
        return pd.DataFrame(columns=["symbol", "timestamp", "bid", "ask", "volume"])
    if "volume" not in frame.columns:
        frame["volume"] = 0.0
    return frame


def _transient() -> tuple[type[BaseException], ...]:
    """Errors after which the whole transaction may be sent again on a new connection."""
    import psycopg2.errors

    return (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.SerializationFailure,
            psycopg2.errors.DeadlockDetected)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _connect_error(exc: psycopg2.OperationalError, where: str) -> Exception:
    msg = _first_line(exc)
    lowered = msg.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return OperationalError(f"{where}: authentication failed; check storage.user and the "
                                "db_password secret")
    if "certificate" in lowered or "ssl" in lowered:
        return OperationalError(f"{where}: SSL negotiation failed ({msg}); the server must enable SSL (and, with "
                                "storage.sslmode=verify-full, present a certificate for this host signed by "
                                "storage.sslrootcert), or set storage.sslmode=disable for a trusted local server")
    if "does not exist" in lowered:
        return OperationalError(f"{where}: {msg}; create the database or fix storage.dbname")
    return RetryableError(f"{where}: cannot connect ({msg}); is the server running and reachable?")
