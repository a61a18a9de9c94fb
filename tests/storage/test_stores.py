from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataQualityError, OperationalError, StorageError
from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer, _self_signed


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    full = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1")
    # Straddle a month boundary so partitioned writes are exercised.
    return full.loc["2024-01-31 22:00":"2024-02-01 02:00"]


def test_parquet_roundtrip_is_exact_and_idempotent(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = ParquetStore(tmp_path)
    assert store.write_bars(bars, "BTCUSD", "M1") == len(bars)
    assert store.write_bars(bars, "BTCUSD", "1min") == 0  # same timeframe, other spelling
    back = store.read_bars("BTCUSD", "M1")
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
    assert sorted(p.name for p in (tmp_path / "ohlcv/BTCUSD/M1").iterdir()) == ["2024-01.parquet", "2024-02.parquet"]
    assert store.latest_bar_time("BTCUSD", "M1") == bars.index[-1]
    window = store.read_bars("BTCUSD", "M1", "2024-02-01 00:00", "2024-02-01 00:10")
    assert len(window) == 10 and window.index[0] == pd.Timestamp("2024-02-01", tz="UTC")


def test_parquet_overlapping_write_replaces_and_counts_only_new(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = ParquetStore(tmp_path)
    store.write_bars(bars.iloc[:100], "BTCUSD", "M1")
    corrected = bars.iloc[50:150].copy()
    corrected.loc[corrected.index[0], "close"] += 1.0
    assert store.write_bars(corrected, "BTCUSD", "M1") == 50
    back = store.read_bars("BTCUSD", "M1")
    assert len(back) == 150
    assert back.loc[corrected.index[0], "close"] == corrected.iloc[0]["close"]


def test_parquet_refuses_bad_frames_and_keeps_stored_rows(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = ParquetStore(tmp_path)
    store.write_bars(bars, "BTCUSD", "M1")
    naive = bars.copy()
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(DataQualityError, match="timezone-naive"):
        store.write_bars(naive, "BTCUSD", "M1")
    with pytest.raises(DataQualityError, match="duplicate timestamps"):
        store.write_bars(pd.concat([bars.iloc[:3], bars.iloc[:1]]), "BTCUSD", "M1")
    with pytest.raises(DataQualityError, match="lack column"):
        store.write_bars(bars.drop(columns="volume"), "BTCUSD", "M1")
    pd.testing.assert_frame_equal(store.read_bars("BTCUSD", "M1"), bars, check_freq=False)


def test_parquet_damaged_file_gives_storage_error(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = ParquetStore(tmp_path)
    store.write_bars(bars, "BTCUSD", "M1")
    (tmp_path / "ohlcv/BTCUSD/M1/2024-02.parquet").write_bytes(b"not parquet")
    with pytest.raises(StorageError, match="dvc checkout"):
        store.read_bars("BTCUSD", "M1")


def test_parquet_ticks_dedupe_identical_rows_only(tmp_path: Path) -> None:
    idx = pd.DatetimeIndex(["2024-08-08 23:59:59.5", "2024-08-08 23:59:59.5", "2024-08-09 00:00:00.1"], tz="UTC")
    ticks = pd.DataFrame({"bid": [1.0, 1.5, 2.0], "ask": [1.1, 1.6, 2.1], "volume": [0.0, 0.0, 1.0]}, index=idx)
    store = ParquetStore(tmp_path)
    assert store.write_ticks(ticks, "BTCUSD") == 3  # same millisecond, different quotes: both kept
    assert store.write_ticks(ticks, "BTCUSD") == 0
    assert len(store.read_ticks("BTCUSD")) == 3


@pytest.fixture
def db(pg: PgServer) -> TimescaleDBClient:
    client = TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password)
    client.create_schema()
    with client._tx() as cur:  # each test starts from empty tables
        cur.execute("TRUNCATE ohlcv, ticks")
    yield client
    client.close()


@pytest.mark.postgres
def test_timescaledb_ohlcv_roundtrip_upsert_and_ssl(db: TimescaleDBClient, bars: pd.DataFrame) -> None:
    assert db.insert_ohlcv(bars, "BTCUSD", "M1") == len(bars)
    assert db.insert_ohlcv(bars, "BTCUSD", "M1") == 0
    back = db.read_bars("BTCUSD", "M1")
    pd.testing.assert_frame_equal(back, bars, check_freq=False, check_index_type=False)
    assert back.index.equals(bars.index)
    assert db.latest_bar_time("BTCUSD", "M1") == bars.index[-1]
    assert db.hypertables is False  # plain PostgreSQL here; the extension path is taken when present
    with db._tx() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True


@pytest.mark.postgres
def test_timescaledb_ticks_from_records_and_frame(db: TimescaleDBClient) -> None:
    records = [
        {"symbol": "BTCUSD", "timestamp": "2024-08-09T00:00:00.100Z", "bid": 61000.0, "ask": 61000.5, "volume": 0.1},
        {"symbol": "BTCUSD", "timestamp": "2024-08-09T00:00:00.100Z", "bid": 61000.5, "ask": 61001.0, "volume": 0.1},
    ]
    assert db.insert_ticks(records) == 2
    assert db.insert_ticks(records) == 0
    assert len(db.read_ticks("BTCUSD")) == 2


@pytest.mark.postgres
def test_timescaledb_failed_batch_writes_nothing(db: TimescaleDBClient, bars: pd.DataFrame) -> None:
    db.insert_ohlcv(bars.iloc[:10], "BTCUSD", "M1")
    bad = bars.iloc[10:20].copy()
    bad.iloc[5, 0] = np.nan  # an impossible bar inside the batch: refused before anything is sent (issue 11)
    with pytest.raises(DataQualityError, match="nothing of this batch was written"):
        db.insert_ohlcv(bad, "BTCUSD", "M1")
    assert len(db.read_bars("BTCUSD", "M1")) == 10


@pytest.mark.postgres
def test_timescaledb_wrong_password_is_typed_and_secret_free(pg: PgServer) -> None:
    wrong = "canary-Wr0ng-pa55"
    client = TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, wrong)
    with pytest.raises(OperationalError, match="authentication failed") as err:
        client.create_schema()
    assert wrong not in str(err.value) and wrong not in repr(client)
    assert err.value.__suppress_context__  # the driver's exception (with the DSN) is not chained


def _session_ssl(client: TimescaleDBClient) -> tuple[bool, str | None]:
    """The server's own record of this client's backend: is it encrypted, and with which protocol."""
    with client._tx() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl, version = cur.fetchone()
    return ssl, version


@pytest.mark.postgres
def test_timescaledb_default_connection_is_encrypted_and_cert_verifies(pg: PgServer, tmp_path: Path) -> None:
    # The client's DEFAULT sslmode must encrypt. The harness server also accepts plain connections, so
    # only the backend's own pg_stat_ssl row tells an encrypted session from a plain one.
    with TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password) as client:
        ssl, version = _session_ssl(client)
    assert ssl is True and version and version.startswith("TLS")

    # verify-full through the client: the server's certificate is checked against sslrootcert ...
    with TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password, sslmode="verify-full",
                           sslrootcert=pg.sslrootcert) as client:
        assert _session_ssl(client)[0] is True

    # ... and really checked: a root that did not sign the server's certificate is refused.
    stranger = tmp_path / "stranger.crt"
    _self_signed(stranger, tmp_path / "stranger.key")
    with pytest.raises(OperationalError, match="SSL"), \
            TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password, sslmode="verify-full",
                              sslrootcert=str(stranger)) as client:
        client.create_schema()


@pytest.mark.postgres
def test_timescaledb_ticks_without_symbol_is_a_typed_error(db: TimescaleDBClient) -> None:
    frame = pd.DataFrame({"timestamp": ["2024-08-09T00:00:00Z"], "bid": [1.0], "ask": [1.1], "volume": [0.0]})
    with pytest.raises(StorageError, match="symbol"):
        db.insert_ticks(frame)
    assert db.insert_ticks(frame, symbol="BTCUSD") == 1


def _write_every_other_bar(root: str, offset: int, bars: pd.DataFrame) -> None:
    store = ParquetStore(root)
    for i in range(offset, len(bars), 2):
        store.write_bars(bars.iloc[i:i + 1], "BTCUSD", "M1")


def test_parquet_parallel_writers_into_one_month_lose_nothing(tmp_path: Path, bars: pd.DataFrame) -> None:
    """Two processes (as in a joblib multirun) interleave single-bar writes into the same monthly file."""
    import multiprocessing as mp

    part = bars.loc["2024-02-01 00:00":"2024-02-01 01:39"]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_every_other_bar, args=(str(tmp_path), k, part)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    pd.testing.assert_frame_equal(ParquetStore(tmp_path).read_bars("BTCUSD", "M1"), part, check_freq=False)
