"""Both stores keep timestamps to the microsecond and as UTC, whatever zone they arrive in (a DST night
in Berlin) and whatever the database session's own time zone is."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer


def _ticks() -> pd.DataFrame:
    idx = pd.DatetimeIndex(["2024-03-31T00:59:59.999999", "2024-03-31T01:00:00.000001"], tz="UTC",
                           name="timestamp").tz_convert("Europe/Berlin")  # DST switch night in Berlin
    return pd.DataFrame({"bid": [1.5, 2.5], "ask": [1.75, 2.75], "volume": [0.0, 1.0]}, index=idx)


@pytest.mark.postgres
def test_timescaledb_ticks_keep_microseconds_and_utc(pg: PgServer) -> None:
    with TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password) as db:
        db.create_schema()
        with db._tx() as cur:
            cur.execute("DELETE FROM ticks WHERE symbol = 'UTCPROBE'")
            cur.execute("SET TIME ZONE 'America/New_York'")  # a session zone must not shift anything
        assert db.insert_ticks(_ticks(), "UTCPROBE") == 2
        back = db.read_ticks("UTCPROBE")
    want = _ticks().tz_convert("UTC")
    assert list(back.index.as_unit("us")) == list(want.index.as_unit("us"))
    assert str(back.index.tz) == "UTC"


def test_parquet_ticks_keep_microseconds_and_utc(tmp_path) -> None:
    store = ParquetStore(tmp_path)
    assert store.write_ticks(_ticks(), "BTCUSD") == 2 and store.write_ticks(_ticks(), "BTCUSD") == 0
    back = store.read_ticks("BTCUSD")
    assert list(back.index.as_unit("us")) == list(_ticks().tz_convert("UTC").index.as_unit("us"))
