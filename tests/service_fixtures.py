"""Database services for the storage and ingest suites (registered from tests/conftest.py).

- ``tsdb``: a throwaway TimescaleDB cluster (PostgreSQL 17 + timescaledb, see tests/tsdbcluster.py), SSL on,
  built once and cached outside the clone; tests that need it skip with the reason where it cannot be built.
- ``db_server``: parametrised over the plain PostgreSQL cluster (``pg``) and ``tsdb``, so a test taking it
  runs against both servers, marked ``postgres`` / ``timescaledb`` respectively.
- ``db_client``: a ``TimescaleDBClient`` on ``db_server`` with the schema in place and empty tables.
- ``restart_server``: ``pg_ctl restart`` of either cluster (same port and data), for fault tests.
"""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Callable, Iterator

import pytest

from engine.storage.timescaledb import TimescaleDBClient
from tests import pgcluster, tsdbcluster
from tests.pgcluster import PgServer
from tests.tsdbcluster import TimescaleUnavailable, TsdbServer, start_timescale


@pytest.fixture(scope="session")
def tsdb() -> Iterator[TsdbServer]:
    try:
        server = start_timescale(password=pysecrets.token_urlsafe(24))
    except TimescaleUnavailable as exc:
        pytest.skip(f"TimescaleDB cannot be provided here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=[pytest.param("pg", marks=pytest.mark.postgres),
                                         pytest.param("tsdb", marks=pytest.mark.timescaledb)])
def db_server(request: pytest.FixtureRequest) -> PgServer:
    return request.getfixturevalue(request.param)


def is_timescale(server: PgServer) -> bool:
    return isinstance(server, TsdbServer)


@pytest.fixture
def db_client(db_server: PgServer) -> Iterator[TimescaleDBClient]:
    client = TimescaleDBClient(db_server.host, db_server.port, db_server.dbname, db_server.user, db_server.password)
    client.create_schema()
    with client._tx() as cur:  # each test starts from empty tables
        cur.execute("TRUNCATE ohlcv, ticks")
    yield client
    client.close()


def restart(server: PgServer, mode: str = "fast") -> None:
    """Restart the cluster in place: every client connection is cut, then the server accepts again.

    ``-l`` again: pg_ctl remembers the server options but not the log file, and a server writing to our
    pipe would keep ``subprocess.run`` waiting for its end."""
    log = server.datadir.parent / "server.log"
    if isinstance(server, TsdbServer):
        inside = tsdbcluster._inside
        tsdbcluster._run(server.root, [str(server.bindir / "pg_ctl"), "-D", inside(server.root, server.datadir),
                                       "-l", inside(server.root, log), "-m", mode, "-w", "-t", "60", "restart"])
    else:
        pgcluster._run([str(server.bindir / "pg_ctl"), "-D", str(server.datadir), "-l", str(log), "-m", mode, "-w",
                        "-t", "60", "restart"], server.run_as)


@pytest.fixture
def restart_server() -> Callable[[PgServer], None]:
    return restart
