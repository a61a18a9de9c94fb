import psycopg2
import pytest

from tests.pgcluster import PgServer


def test_cluster_requires_password_and_speaks_ssl(pg: PgServer) -> None:
    conn = psycopg2.connect(**pg.kwargs(), sslmode="require")
    with conn.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) >= 150000
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**{**pg.kwargs(), "password": "wrong"}, sslmode="require", connect_timeout=5)
