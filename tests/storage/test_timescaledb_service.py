"""TimescaleDBClient and the server around it: SSL, roles, chunks, editions, dropped connections, SQL hygiene."""

from __future__ import annotations

import ast
import logging
import secrets
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

import engine.storage
from engine.errors import OperationalError, StorageError
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer, _self_signed
from tests.service_fixtures import is_timescale, restart


def admin(server: PgServer) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(**server.kwargs(), sslmode="require")
    conn.autocommit = True
    return conn


def some_ticks(n: int = 50, start: str = "2024-04-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="1s", tz="UTC", name="timestamp")
    return pd.DataFrame({"bid": 100.0, "ask": 100.5, "volume": range(n)}, index=index).astype(float)


def backend_ssl(client: TimescaleDBClient) -> tuple[bool, str | None]:
    with client._tx() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()


def test_client_encrypts_by_default_and_verify_full_checks_the_ca(db_server: PgServer, tmp_path: Path) -> None:
    with TimescaleDBClient(**db_server.kwargs()) as client:
        assert client.sslmode == "require"
        ssl, version = backend_ssl(client)  # the server's record of this very session
    assert ssl is True and version.startswith("TLS")
    with TimescaleDBClient(**db_server.kwargs(), sslmode="verify-full", sslrootcert=db_server.sslrootcert) as client:
        assert backend_ssl(client)[0] is True
    stranger = tmp_path / "other-ca.crt"
    _self_signed(stranger, tmp_path / "other-ca.key")
    with pytest.raises(OperationalError, match=r"SSL negotiation failed.*verify-full"):
        TimescaleDBClient(**db_server.kwargs(), sslmode="verify-full", sslrootcert=str(stranger)).create_schema()


def test_schema_reports_the_edition_and_sets_chunk_intervals(db_server: PgServer, caplog) -> None:
    caplog.set_level(logging.INFO, logger="engine.storage")
    with TimescaleDBClient(**db_server.kwargs(), chunk_interval="3 days", tick_chunk_interval="6 hours") as db:
        db.create_schema()
        message = caplog.text
        if not is_timescale(db_server):
            assert db.hypertables is False and "plain PostgreSQL" in message
            return
        assert "TimescaleDB 2." in message and "(apache edition): hypertables" in message
        assert "compression, continuous aggregates and retention not offered by this edition" in message
        with db._tx() as cur:
            cur.execute("SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions")
            intervals = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates")
            assert cur.fetchone()[0] == 0
        assert intervals == {"ohlcv": pd.Timedelta("3 days"), "ticks": pd.Timedelta("6 hours")}
        db.insert_ticks(some_ticks(3, "2024-04-01 05:59:59"), "CHUNKS")  # spans two 6-hour chunks
        with db._tx() as cur:
            cur.execute("SELECT range_start, range_end FROM timescaledb_information.chunks "
                        "WHERE hypertable_name = 'ticks' ORDER BY 1")
            edges = [pd.Timestamp(t).tz_convert("UTC") for row in cur.fetchall() for t in row]
        assert edges == [pd.Timestamp(f"2024-04-01 {h:02d}:00", tz="UTC") for h in (0, 6, 6, 12)]
    with TimescaleDBClient(**db_server.kwargs()) as db:  # back to the defaults: the owner may change it
        db.create_schema()
        with db._tx() as cur:
            cur.execute("SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions")
            assert dict(cur.fetchall()) == {"ohlcv": pd.Timedelta("7 days"), "ticks": pd.Timedelta("1 day")}


def test_a_role_that_may_only_write_rows_can_start_and_write(db_server: PgServer, caplog) -> None:
    TimescaleDBClient(**db_server.kwargs()).create_schema()
    role, password = f"writer_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    conn = admin(db_server)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ohlcv, ticks, series_heads TO {}")
                    .format(sql.Identifier(role)))
        cur.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,))
        assert cur.fetchone()[0] is False  # PostgreSQL 15+: no CREATE on public for ordinary roles
    try:
        kwargs = {**db_server.kwargs(), "user": role, "password": password}
        with TimescaleDBClient(**kwargs, chunk_interval="2 days") as db:  # a chunk size only the owner may set
            db.create_schema()
            db.create_schema()
            assert db.insert_ticks(some_ticks(20, "2031-01-01"), "ROLECHK") == 20
            assert db.insert_ticks(some_ticks(30, "2031-01-01"), "ROLECHK") == 10
            assert db.last_timestamp("ROLECHK") == some_ticks(30, "2031-01-01").index[-1]
        if is_timescale(db_server):
            assert "only the table owner can change it" in caplog.text
    finally:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM ticks WHERE symbol = 'ROLECHK'")
            cur.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(role)))
        conn.close()


def test_rows_deleted_behind_the_writer_do_not_leave_a_stale_resume_point(db_client: TimescaleDBClient) -> None:
    db_client.insert_ticks(some_ticks(50), "GAPS")
    with db_client._tx() as cur:
        cur.execute("DELETE FROM ticks WHERE symbol = 'GAPS' AND timestamp >= '2024-04-01 00:00:30+00'")
    assert db_client.last_timestamp("GAPS") == some_ticks(30).index[-1]
    assert db_client.insert_ticks(some_ticks(50), "GAPS") == 20


def test_dropped_connection_is_reopened_and_the_batch_sent_whole(db_client: TimescaleDBClient,
                                                                 db_server: PgServer) -> None:
    db_client.retry_base = 0.05
    assert db_client.insert_ticks(some_ticks(10), "DROP") == 10
    with db_client._tx() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    conn = admin(db_server)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.close()
    assert db_client.insert_ticks(some_ticks(40), "DROP") == 30
    assert db_client.reconnects == 1
    restart(db_server)  # the whole server goes away and comes back on the same port
    assert db_client.insert_ticks(some_ticks(60), "DROP") == 20
    assert len(db_client.fetch_ticks("DROP")) == 60


def test_an_unreachable_server_fails_typed_after_bounded_retries() -> None:
    client = TimescaleDBClient("127.0.0.1", 1, "engine", "engine", "not-used", connect_timeout=2, retries=2,
                               retry_base=0.01)
    with pytest.raises(engine.errors.RetryableError, match="cannot connect"):
        client.insert_ticks(some_ticks(3), "NOWHERE")
    assert client.reconnects == 2


def test_database_errors_are_typed_without_the_password(db_server: PgServer) -> None:
    wrong = "canary-" + secrets.token_hex(6)
    with pytest.raises(OperationalError, match="authentication failed") as err:
        TimescaleDBClient(**{**db_server.kwargs(), "password": wrong}).create_schema()
    assert wrong not in str(err.value)
    with pytest.raises(OperationalError, match="chunk_interval"):
        TimescaleDBClient(**db_server.kwargs(), chunk_interval="soon")
    with pytest.raises(StorageError), TimescaleDBClient(**db_server.kwargs()) as db, db._tx() as cur:
        cur.execute("SELECT * FROM no_such_table")


def _sql_calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "copy_expert", "executemany") and node.args]


def _quoted(tree: ast.AST) -> set[ast.AST]:
    """Nodes inside sql.Identifier(...) / sql.Literal(...): quoted by psycopg2 whatever they hold."""
    inside: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("Identifier", "Literal"):
            inside.update(ast.walk(node))
    return inside


def test_no_sql_text_is_built_by_string_formatting() -> None:
    """Statements of the PostgreSQL store are literals or psycopg2.sql compositions: no f-string, %, + or
    str.format builds SQL text (an f-string may only name an identifier, which psycopg2 quotes)."""
    folder = Path(engine.storage.__file__).parent
    checked = 0
    for name in ("timescaledb.py", "pgschema.py", "pgwrite.py"):
        tree = ast.parse((folder / name).read_text())
        quoted = _quoted(tree)
        for call in _sql_calls(tree):
            checked += 1
            first = call.args[0]
            assert not isinstance(first, ast.BinOp | ast.JoinedStr), f"{name}:{call.lineno}: built SQL"
            for node in ast.walk(first):
                assert not isinstance(node, ast.JoinedStr) or node in quoted, \
                    f"{name}:{node.lineno}: f-string inside a SQL statement"
            if isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute) and first.func.attr == "format":
                base = first.func.value
                assert not isinstance(base, ast.Constant), f"{name}:{call.lineno}: str.format SQL"
    assert checked >= 15
