"""TimescaleDBClient against both servers: round trips, idempotence on every write path, bars from ticks."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from engine.errors import StorageError
from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer
from tests.service_fixtures import is_timescale


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1").loc["2024-01-31 20:00":"2024-02-01 04:00"]


def ticks(n: int, start: str = "2024-03-01", step: str = "250ms", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq=step, tz="UTC", name="timestamp")
    bid = (60_000 + np.cumsum(rng.normal(0, 2, n))).round(2)
    return pd.DataFrame({"bid": bid, "ask": bid + 0.5, "volume": rng.integers(0, 5, n) / 10}, index=index)


def test_seed_api_round_trip(db_client: TimescaleDBClient, db_server: PgServer, bars: pd.DataFrame) -> None:
    with TimescaleDBClient(**db_server.kwargs()) as db:  # the seed's constructor arguments, as a context manager
        db.create_schema()
        db.create_schema()  # idempotent
        assert db.insert_ohlcv(bars, "BTCUSD", "M1") == len(bars)
        assert db.insert_ohlcv(bars, "BTCUSD", "1min") == 0
        tick_frame = ticks(500)
        assert db.insert_ticks(tick_frame, "BTCUSD") == 500
        assert db.hypertables is is_timescale(db_server)
    back = db_client.fetch_ohlcv("BTCUSD", bars.index[0], bars.index[-1] + pd.Timedelta("1min"), "M1")
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
    assert db_client.last_timestamp("BTCUSD", "M1") == bars.index[-1]
    assert db_client.last_timestamp("BTCUSD") == tick_frame.index[-1]
    assert db_client.last_timestamp("ETHUSD") is None and db_client.last_timestamp("BTCUSD", "H1") is None
    pd.testing.assert_frame_equal(db_client.fetch_ticks("BTCUSD"), tick_frame, check_freq=False)
    window = db_client.fetch_ticks("BTCUSD", tick_frame.index[100], tick_frame.index[200])
    assert len(window) == 100 and window.index[0] == tick_frame.index[100]


def test_every_write_path_stores_each_row_once(db_client: TimescaleDBClient) -> None:
    frame = ticks(4_000)
    # Quotes sharing a microsecond are distinct ticks; an identical row inside the batch is one tick.
    extra = frame.iloc[[10]].assign(bid=frame["bid"].iloc[10] - 0.25)
    batch = pd.concat([frame, extra, frame.iloc[[20]]]).sort_index(kind="stable")
    assert len(batch) == 4_002
    assert db_client.insert_ticks(batch.iloc[:1_000], "BTCUSD") == 999  # fresh (append path); one duplicate
    assert db_client.insert_ticks(batch.iloc[:1_000], "BTCUSD") == 0  # all stored: checked path
    assert db_client.insert_ticks(batch.iloc[500:3_000], "BTCUSD") == 2_000  # overlap: both paths in one batch
    assert db_client.insert_ticks(batch, "BTCUSD", append_only=False) == 1_002  # forced check, the rest new
    older = ticks(300, start="2024-02-28")  # a backfill before everything stored
    assert db_client.insert_ticks(older, "BTCUSD") == 300
    stored = db_client.fetch_ticks("BTCUSD")
    want = pd.concat([older, frame, extra]).sort_values(["timestamp", "bid", "ask", "volume"])
    pd.testing.assert_frame_equal(stored, want, check_freq=False)
    assert db_client.last_timestamp("BTCUSD") == frame.index[-1]
    minus_zero = frame.iloc[:5].assign(volume=-0.0)  # -0.0 == 0.0 for the store as for SQL
    zero = frame.iloc[:5].assign(volume=0.0)
    assert db_client.insert_ticks(zero, "ZERO") == 5 and db_client.insert_ticks(minus_zero, "ZERO") == 0


def test_bars_upsert_replaces_corrected_values(db_client: TimescaleDBClient, bars: pd.DataFrame) -> None:
    assert db_client.insert_ohlcv(bars.iloc[:100], "BTCUSD", "M1") == 100
    corrected = bars.iloc[50:150].copy()
    corrected.loc[corrected.index[0], "close"] = corrected["high"].iloc[0]  # the broker corrects a bar
    assert db_client.insert_ohlcv(corrected, "BTCUSD", "M1") == 50
    back = db_client.fetch_ohlcv("BTCUSD", timeframe="M1")
    assert len(back) == 150 and back.loc[corrected.index[0], "close"] == corrected["close"].iloc[0]
    assert db_client.insert_ohlcv(bars.iloc[:150], "BTCUSD", "M5") == 150  # another series, own rows
    assert db_client.insert_ohlcv(bars.iloc[:150], "BTCUSD", "M1", append_only=False) == 0
    assert len(db_client.fetch_ohlcv("BTCUSD", timeframe="M1")) == 150


def test_concurrent_writers_of_one_series_store_each_row_once(db_server: PgServer,
                                                               db_client: TimescaleDBClient) -> None:
    frame = ticks(6_000, seed=3)
    parts = [frame.iloc[0:4_000], frame.iloc[2_000:6_000], frame.iloc[1_000:5_000], frame]
    added: list[int] = []
    errors: list[BaseException] = []

    def writer(part: pd.DataFrame) -> None:
        try:
            with TimescaleDBClient(**db_server.kwargs()) as db:
                added.append(db.insert_ticks(part, "BTCUSD"))
        except BaseException as exc:  # surfaced below; a thread's exception would be lost otherwise
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and sum(added) == 6_000
    assert len(db_client.fetch_ticks("BTCUSD")) == 6_000


def test_bars_from_ticks_are_computed_in_the_database(db_client: TimescaleDBClient, db_server: PgServer) -> None:
    frame = ticks(20_000, step="1s", seed=5)  # one tick a second: no ties at a bar's edges
    db_client.insert_ticks(frame, "BTCUSD")
    lo, hi = pd.Timestamp("2024-03-01 00:10", tz="UTC"), pd.Timestamp("2024-03-01 04:00", tz="UTC")
    inside = frame.loc[(frame.index >= lo) & (frame.index < hi), "bid"]
    for tf, rule in (("M1", "1min"), ("M5", "5min"), ("H1", "1h")):
        got = db_client.bars_from_ticks("BTCUSD", tf, lo, hi)
        want = inside.resample(rule).ohlc()
        want["volume"] = inside.resample(rule).count().astype(float)
        pd.testing.assert_frame_equal(got, want.rename_axis("timestamp"), check_freq=False)
    real = db_client.bars_from_ticks("BTCUSD", "M5", lo, hi, volume="real")
    want_real = frame.loc[(frame.index >= lo) & (frame.index < hi), "volume"].resample("5min").sum()
    np.testing.assert_allclose(real["volume"].to_numpy(), want_real.to_numpy())
    assert db_client.bars_from_ticks("BTCUSD", "M1", "2030-01-01", "2030-01-02").empty
    with pytest.raises(Exception, match="fixed-length"):
        db_client.bars_from_ticks("BTCUSD", "MN1", lo, hi)


def test_a_batch_failing_inside_the_database_writes_nothing(db_client: TimescaleDBClient, db_server: PgServer,
                                                            bars: pd.DataFrame) -> None:
    db_client.insert_ohlcv(bars.iloc[:10], "BTCUSD", "M1")
    with db_client._tx() as cur:  # a server-side refusal of one row in the middle of a batch
        cur.execute("CREATE OR REPLACE FUNCTION refuse_bar() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.volume = 12345 THEN RAISE EXCEPTION 'refused by trigger'; END IF; RETURN NEW; END $$")
        cur.execute("CREATE TRIGGER refuse_bar BEFORE INSERT ON ohlcv FOR EACH ROW EXECUTE FUNCTION refuse_bar()")
    try:
        bad = bars.iloc[10:20].copy()
        bad.iloc[5, bad.columns.get_loc("volume")] = 12345.0
        with pytest.raises(StorageError, match="nothing was written"):
            db_client.insert_ohlcv(bad, "BTCUSD", "M1")
        assert len(db_client.fetch_ohlcv("BTCUSD", timeframe="M1")) == 10
        assert db_client.last_timestamp("BTCUSD", "M1") == bars.index[9]  # the head did not move either
    finally:
        with db_client._tx() as cur:
            cur.execute("DROP TRIGGER refuse_bar ON ohlcv")


def test_the_row_matcher_is_exact() -> None:
    """not_stored (the conflict check of the checked path) against a plain set difference, on rows that share
    microseconds, differ in one word only, repeat, and come in any order."""
    from engine.storage.pgwrite import not_stored

    rng = np.random.default_rng(9)
    base = np.column_stack([rng.integers(0, 400, 3_000), rng.integers(0, 3, (3_000, 3))]).astype(np.int64)
    stored = base[rng.permutation(3_000)[:2_000]]
    batch = np.vstack([base, base[:50] + np.array([0, 0, 0, 1]), base[:10]])[rng.permutation(3_060)]
    want = np.array([tuple(r) not in set(map(tuple, stored)) for r in batch])
    assert (not_stored(batch, stored) == want).all() and want.any() and not want.all()
    assert not_stored(batch, stored[:0]).all()
