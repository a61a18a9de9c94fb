"""PostgreSQL/TimescaleDB store: ``ticks`` and ``ohlcv`` tables, hypertables where the extension exists.

Writes go through ``COPY`` into a temporary table and one ``INSERT .. ON CONFLICT`` so a batch is
atomic (all rows or none) and idempotent (re-sent rows do not duplicate). SSL is required unless the
caller lowers ``sslmode`` explicitly. The password is kept out of ``repr`` and of every error message.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from engine import timeframes
from engine.data.frames import BAR_COLUMNS, conform_bars, conform_ticks, to_utc
from engine.errors import OperationalError, RetryableError, StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ohlcv (
    symbol     TEXT             NOT NULL,
    timestamp  TIMESTAMPTZ      NOT NULL,
    open       DOUBLE PRECISION NOT NULL,
    high       DOUBLE PRECISION NOT NULL,
    low        DOUBLE PRECISION NOT NULL,
    close      DOUBLE PRECISION NOT NULL,
    volume     DOUBLE PRECISION NOT NULL,
    timeframe  TEXT             NOT NULL,
    PRIMARY KEY (symbol, timeframe, timestamp)
);
CREATE TABLE IF NOT EXISTS ticks (
    symbol     TEXT             NOT NULL,
    timestamp  TIMESTAMPTZ      NOT NULL,
    bid        DOUBLE PRECISION NOT NULL,
    ask        DOUBLE PRECISION NOT NULL,
    volume     DOUBLE PRECISION NOT NULL DEFAULT 0,
    -- Ticks legitimately share a millisecond; only an identical row is a duplicate.
    CONSTRAINT ticks_row_unique UNIQUE (symbol, timestamp, bid, ask, volume)
);
"""

_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class TimescaleDBClient:
    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *,
                 sslmode: str = "require", sslrootcert: str | None = None, connect_timeout: int = 10,
                 statement_timeout_ms: int = 300_000) -> None:
        if sslmode not in _SSLMODES:
            raise OperationalError(f"storage.sslmode={sslmode!r} is not one of {', '.join(_SSLMODES)}")
        self.host, self.port, self.dbname, self.user = host, int(port), dbname, user
        self.sslmode = sslmode
        self._params: dict[str, Any] = {
            "host": host, "port": int(port), "dbname": dbname, "user": user, "password": password,
            "sslmode": sslmode, "connect_timeout": int(connect_timeout),
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            "application_name": "engine",
        }
        if sslrootcert:
            self._params["sslrootcert"] = sslrootcert
        self._conn: psycopg2.extensions.connection | None = None
        self.hypertables: bool | None = None

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
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(**self._params)
            except psycopg2.OperationalError as exc:
                raise _connect_error(exc, self.describe()) from None
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg2.extensions.cursor]:
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:  # commits on success, rolls back on any exception
                yield cur
        except psycopg2.OperationalError as exc:
            conn.close()
            raise RetryableError(f"{self.describe()}: connection lost ({_first_line(exc)}); nothing was "
                                 "written by this call, retry it") from None
        except psycopg2.Error as exc:
            raise StorageError(f"{self.describe()}: {_first_line(exc)}; nothing was written by this call") from None

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    # -- schema -----------------------------------------------------------------------------------
    def create_schema(self) -> None:
        """Create tables (idempotent); make them hypertables when TimescaleDB is installed."""
        with self._tx() as cur:
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            available = cur.fetchone() is not None
            if available:
                cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cur.execute(_SCHEMA)
            if available:
                for table in ("ohlcv", "ticks"):
                    cur.execute("SELECT create_hypertable(%s, 'timestamp', if_not_exists => TRUE, "
                                "migrate_data => TRUE)", (table,))
        self.hypertables = available

    # -- writes -----------------------------------------------------------------------------------
    def insert_ohlcv(self, bars: pd.DataFrame, symbol: str, timeframe: str) -> int:
        """Upsert bars; returns the number of rows that were not stored before."""
        bars = conform_bars(bars)
        if bars.empty:
            return 0
        tf = timeframes.parse(timeframe).mt5
        buf = _csv(bars, extra={"symbol": symbol, "timeframe": tf})
        cols = "symbol, timestamp, open, high, low, close, volume, timeframe"
        with self._tx() as cur:
            cur.execute("CREATE TEMP TABLE _stage_ohlcv (LIKE ohlcv INCLUDING DEFAULTS) ON COMMIT DROP")
            cur.copy_expert(f"COPY _stage_ohlcv ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
            cur.execute(
                f"INSERT INTO ohlcv ({cols}) SELECT {cols} FROM _stage_ohlcv "
                "ON CONFLICT (symbol, timeframe, timestamp) DO UPDATE SET open = EXCLUDED.open, "
                "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume "
                "RETURNING (xmax = 0)")
            return sum(1 for (inserted,) in cur.fetchall() if inserted)

    def write_bars(self, bars: pd.DataFrame, symbol: str, timeframe: str) -> int:
        return self.insert_ohlcv(bars, symbol, timeframe)

    def insert_ticks(self, ticks: pd.DataFrame | Iterable[Mapping[str, Any]], symbol: str | None = None) -> int:
        """Insert ticks (a frame, or dicts with ``symbol, timestamp, bid, ask, volume``); identical rows are
        stored once. Returns the number of new rows."""
        frame = ticks if isinstance(ticks, pd.DataFrame) else _ticks_from_records(ticks)
        if "timestamp" in frame.columns:
            frame = frame.set_index(pd.to_datetime(frame["timestamp"], utc=True)).drop(columns="timestamp")
        if symbol is None and "symbol" not in frame.columns:
            raise StorageError("insert_ticks needs symbol=... or a 'symbol' column")
        groups = [(symbol, frame)] if symbol is not None else list(frame.groupby("symbol", sort=False))
        cols = "symbol, timestamp, bid, ask, volume"
        with self._tx() as cur:
            cur.execute("CREATE TEMP TABLE _stage_ticks (LIKE ticks INCLUDING DEFAULTS) ON COMMIT DROP")
            for sym, part in groups:
                conformed = conform_ticks(part)[["bid", "ask", "volume"]]
                cur.copy_expert(f"COPY _stage_ticks ({cols}) FROM STDIN WITH (FORMAT csv)",
                                _csv(conformed, extra={"symbol": str(sym)}))
            cur.execute(f"INSERT INTO ticks ({cols}) SELECT DISTINCT {cols} FROM _stage_ticks "
                        "ON CONFLICT ON CONSTRAINT ticks_row_unique DO NOTHING")
            added = cur.rowcount
        return added

    # -- reads ------------------------------------------------------------------------------------
    def read_bars(self, symbol: str, timeframe: str, start: pd.Timestamp | str | None = None,
                  end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        tf = timeframes.parse(timeframe).mt5
        sql = ("SELECT timestamp, open, high, low, close, volume FROM ohlcv "
               "WHERE symbol = %s AND timeframe = %s")
        args: list[Any] = [symbol, tf]
        if start is not None:
            sql += " AND timestamp >= %s"
            args.append(to_utc(start).to_pydatetime())
        if end is not None:
            sql += " AND timestamp < %s"
            args.append(to_utc(end).to_pydatetime())
        sql += " ORDER BY timestamp"
        with self._tx() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        frame = pd.DataFrame(rows, columns=["timestamp", *BAR_COLUMNS])
        frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True)
        return conform_bars(frame)

    def read_ticks(self, symbol: str, start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        sql = "SELECT timestamp, bid, ask, volume FROM ticks WHERE symbol = %s"
        args: list[Any] = [symbol]
        if start is not None:
            sql += " AND timestamp >= %s"
            args.append(to_utc(start).to_pydatetime())
        if end is not None:
            sql += " AND timestamp < %s"
            args.append(to_utc(end).to_pydatetime())
        with self._tx() as cur:
            cur.execute(sql + " ORDER BY timestamp", args)
            rows = cur.fetchall()
        frame = pd.DataFrame(rows, columns=["timestamp", "bid", "ask", "volume"])
        frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True)
        return conform_ticks(frame)

    def latest_bar_time(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        with self._tx() as cur:
            cur.execute("SELECT max(timestamp) FROM ohlcv WHERE symbol = %s AND timeframe = %s",
                        (symbol, timeframes.parse(timeframe).mt5))
            (latest,) = cur.fetchone()
        return None if latest is None else to_utc(pd.Timestamp(latest))


def _csv(frame: pd.DataFrame, extra: Mapping[str, str]) -> io.StringIO:
    out = frame.copy()
    # ISO with offset: unambiguous for PostgreSQL whatever the session TimeZone is.
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))
    for name, value in extra.items():
        out[name] = value
    order = ["symbol", "timestamp", *[c for c in frame.columns], *[k for k in extra if k != "symbol"]]
    buf = io.StringIO()
    out[order].to_csv(buf, header=False, index=False, float_format="%.17g")
    buf.seek(0)
    return buf


def _ticks_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(records))
    if frame.empty:
        return pd.DataFrame(columns=["symbol", "timestamp", "bid", "ask", "volume"])
    if "volume" not in frame.columns:
        frame["volume"] = 0.0
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _connect_error(exc: psycopg2.OperationalError, where: str) -> Exception:
    msg = _first_line(exc)
    lowered = msg.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return OperationalError(f"{where}: authentication failed; check storage.user and the "
                                "db_password secret")
    if "ssl" in lowered:
        return OperationalError(f"{where}: SSL negotiation failed ({msg}); the server must enable SSL, or set "
                                "storage.sslmode=disable for a trusted local server")
    if "does not exist" in lowered:
        return OperationalError(f"{where}: {msg}; create the database or fix storage.dbname")
    return RetryableError(f"{where}: cannot connect ({msg}); is the server running and reachable?")
