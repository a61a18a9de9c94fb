"""Tables of the PostgreSQL/TimescaleDB store, and what the server's TimescaleDB edition offers.

``ensure_schema`` is idempotent and needs no privilege beyond reading the catalogs when the tables already
exist, so a role that may only write rows can call it on every start. It creates what is missing, turns the
tables into hypertables with the configured chunk intervals where TimescaleDB is installed, and switches on
compression, the one-minute continuous aggregate and tick retention only where the edition offers them (the
Apache edition that Debian ships has hypertables, ``time_bucket`` and chunks, not those three). Every
identifier goes through ``psycopg2.sql``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

log = logging.getLogger("engine.storage")

OHLCV, TICKS, HEADS = "ohlcv", "ticks", "series_heads"
TICK_COLS = ("symbol", "timestamp", "bid", "ask", "volume")
BAR_COLS = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "timeframe")
CAGG = "ticks_1m"  # one-minute bid bars from ticks, kept by TimescaleDB where the edition offers it

# No unique index on the data tables: maintaining a b-tree costs about three times the COPY itself, and the
# writer (engine.storage.pgwrite) already guarantees each row once, under a per-series lock, with the newest
# stored time of every series in series_heads. Time-range reads are bounded by the chunks of a hypertable, and
# by a BRIN index (tiny, cheap to keep) on a plain table.
_TABLES = {
    OHLCV: sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
        symbol TEXT NOT NULL, timestamp TIMESTAMPTZ NOT NULL,
        open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL,
        close DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL, timeframe TEXT NOT NULL)"""),
    TICKS: sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
        symbol TEXT NOT NULL, timestamp TIMESTAMPTZ NOT NULL,
        bid DOUBLE PRECISION NOT NULL, ask DOUBLE PRECISION NOT NULL, volume DOUBLE PRECISION NOT NULL DEFAULT 0)"""),
    HEADS: sql.SQL("""CREATE TABLE IF NOT EXISTS {t} (
        tbl TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, last_ts TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (tbl, symbol, timeframe))"""),
}
_BRIN = sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} USING brin (timestamp)")
# Rows removed behind the writer's back (DELETE, TRUNCATE) would leave a head newer than the data, and an
# ingestor resuming from it would skip the gap: forget the table's heads then; the next read of a head
# recomputes it from the data once.
_FORGET = sql.SQL("CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "DELETE FROM {h} WHERE tbl = TG_TABLE_NAME; RETURN NULL; END $$")
_FORGET_ON = sql.SQL("CREATE TRIGGER {n} AFTER DELETE OR TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {f}()")


@dataclass(frozen=True)
class Layout:
    """How the tables should be laid out; intervals are PostgreSQL interval text (``'1 day'``)."""

    bar_chunk: str = "7 days"
    tick_chunk: str = "1 day"
    compress_after: str | None = "7 days"
    tick_retention: str | None = None


@dataclass(frozen=True)
class Features:
    """What this database offers. ``edition`` is TimescaleDB's license setting: ``apache`` or ``timescale``."""

    timescaledb: bool = False
    version: str | None = None
    edition: str | None = None

    @property
    def community(self) -> bool:
        """Compression, continuous aggregates and retention policies are community-edition features."""
        return self.timescaledb and self.edition == "timescale"

    def describe(self) -> str:
        if not self.timescaledb:
            return "plain PostgreSQL (no timescaledb extension): regular tables, date_bin for bars"
        extra = ("compression, continuous aggregates and retention on" if self.community else
                 "compression, continuous aggregates and retention not offered by this edition")
        return f"TimescaleDB {self.version} ({self.edition} edition): hypertables; {extra}"


def detect(cur: Cursor) -> Features:
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    row = cur.fetchone()
    if row is None:
        return Features()
    cur.execute("SELECT current_setting('timescaledb.license', true)")
    (edition,) = cur.fetchone()
    return Features(True, str(row[0]), str(edition or "apache"))


def _exists(cur: Cursor, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cur.fetchone()[0])


def _owned(cur: Cursor, name: str) -> bool:
    cur.execute("SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass(%s)",
                (name,))
    row = cur.fetchone()
    return bool(row and row[0])


def _savepoint(cur: Cursor, statement: sql.Composable, args: tuple = ()) -> bool:
    """Run one optional statement; a refusal (privileges, edition) rolls back only that statement."""
    cur.execute("SAVEPOINT engine_optional")
    try:
        cur.execute(statement, args)
    except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.FeatureNotSupported,
            psycopg2.errors.UndefinedFunction, psycopg2.errors.ObjectNotInPrerequisiteState) as exc:
        cur.execute("ROLLBACK TO SAVEPOINT engine_optional")
        log.warning("storage: skipped an optional step: %s", str(exc).strip().splitlines()[0])
        return False
    cur.execute("RELEASE SAVEPOINT engine_optional")
    return True


def chunk_interval(cur: Cursor, table: str) -> str | None:
    """The hypertable's current chunk interval as interval text, or None for a plain table."""
    cur.execute("SELECT time_interval::text FROM timescaledb_information.dimensions "
                "WHERE hypertable_schema = current_schema() AND hypertable_name = %s", (table,))
    row = cur.fetchone()
    return None if row is None else str(row[0])


def _hypertable(cur: Cursor, table: str, interval: str, *, migrate: bool, may_change: bool) -> None:
    current = chunk_interval(cur, table)
    if current is None:
        if not may_change:
            log.warning("storage: %s is a plain table in a TimescaleDB database; its owner can convert it", table)
            return
        # The unique keys already cover (symbol, timestamp): TimescaleDB's extra time index would only slow writes.
        _savepoint(cur, sql.SQL("SELECT create_hypertable({t}, 'timestamp', chunk_time_interval => %s::interval, "
                                "if_not_exists => TRUE, create_default_indexes => FALSE, migrate_data => {m})")
                   .format(t=sql.Literal(table), m=sql.Literal(migrate)), (interval,))
        return
    cur.execute("SELECT %s::interval = %s::interval", (current, interval))
    if cur.fetchone()[0]:
        return
    if may_change:
        # Applies to chunks created from now on; existing chunks keep their span.
        cur.execute("SELECT set_chunk_time_interval(%s, %s::interval)", (table, interval))
    else:
        log.warning("storage: %s chunks are %s, config asks for %s; only the table owner can change it",
                    table, current, interval)


def _community(cur: Cursor, layout: Layout) -> None:
    if layout.compress_after:
        segment = {TICKS: "symbol", OHLCV: "symbol, timeframe"}
        for table in (TICKS, OHLCV):
            _savepoint(cur, sql.SQL("ALTER TABLE {t} SET (timescaledb.compress, timescaledb.compress_segmentby = {s}, "
                                    "timescaledb.compress_orderby = 'timestamp')")
                       .format(t=sql.Identifier(table), s=sql.Literal(segment[table])))
            _savepoint(cur, sql.SQL("SELECT add_compression_policy({t}, compress_after => %s::interval, "
                                    "if_not_exists => TRUE)").format(t=sql.Literal(table)), (layout.compress_after,))
    if layout.tick_retention:
        _savepoint(cur, sql.SQL("SELECT add_retention_policy({t}, drop_after => %s::interval, if_not_exists => TRUE)")
                   .format(t=sql.Literal(TICKS)), (layout.tick_retention,))
    if not _exists(cur, CAGG):
        made = _savepoint(cur, sql.SQL(
            "CREATE MATERIALIZED VIEW {v} WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            "SELECT symbol, time_bucket(INTERVAL '1 minute', timestamp) AS timestamp, first(bid, timestamp) AS open, "
            "max(bid) AS high, min(bid) AS low, last(bid, timestamp) AS close, count(*)::float8 AS volume "
            "FROM {t} GROUP BY 1, 2 WITH NO DATA").format(v=sql.Identifier(CAGG), t=sql.Identifier(TICKS)))
        if made:
            _savepoint(cur, sql.SQL("SELECT add_continuous_aggregate_policy({v}, start_offset => INTERVAL '1 day', "
                                    "end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute')")
                       .format(v=sql.Literal(CAGG)))


def ensure_schema(cur: Cursor, layout: Layout) -> Features:
    """Create what is missing; with both tables present only catalogs are read (and owner-only fixes tried)."""
    present = all(_exists(cur, table) for table in _TABLES)
    data_existed = _exists(cur, OHLCV) and _exists(cur, TICKS)
    if not present:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        if cur.fetchone() is not None:
            _savepoint(cur, sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb"))
        for table, ddl in _TABLES.items():
            cur.execute(ddl.format(t=sql.Identifier(table)))
    features = detect(cur)
    if features.timescaledb:
        for table, interval in ((OHLCV, layout.bar_chunk), (TICKS, layout.tick_chunk)):
            _hypertable(cur, table, interval, migrate=data_existed, may_change=not present or _owned(cur, table))
    if not present:
        forget = sql.Identifier("engine_forget_heads")
        cur.execute(_FORGET.format(f=forget, h=sql.Identifier(HEADS)))
        for table in (OHLCV, TICKS):
            trigger = f"{table}_forget_heads"
            cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)", (trigger, table))
            if cur.fetchone() is None:
                _savepoint(cur, _FORGET_ON.format(n=sql.Identifier(trigger), t=sql.Identifier(table), f=forget))
            # A hypertable's chunks already bound every time-range read; a plain table needs the BRIN.
            if not features.timescaledb or chunk_interval(cur, table) is None:
                cur.execute(_BRIN.format(i=sql.Identifier(f"{table}_time_brin"), t=sql.Identifier(table)))
        if features.community and (not present or _owned(cur, TICKS)):
            _community(cur, layout)
    log.info("storage: %s", features.describe())
    return features
