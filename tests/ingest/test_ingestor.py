"""DataIngestor against the real simulator (step mode: the test moves its clock) and real stores."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import ConfigError
from engine.ingest import DataIngestor, IngestSettings
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import EmbeddedSimulatorClient, Simulator
from engine.mt5.sim.settings import SimSettings
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer

START = pd.Timestamp("2024-03-04 00:00", tz="UTC")


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def feed() -> Iterator[EmbeddedSimulatorClient]:
    """The simulator replaying the bundled real 1m bars, its clock at START + 30 min, moved by the test."""
    with EmbeddedSimulatorClient(SimSettings(start=(START + pd.Timedelta(minutes=30)).isoformat()),
                                 server_time_offset_hours=2) as client:
        yield client


@pytest.fixture
def started() -> Iterator[Callable[[DataIngestor], DataIngestor]]:
    """Start ingestors through this so that a failing test never leaves a thread polling behind it."""
    running: list[DataIngestor] = []

    def start(ingestor: DataIngestor) -> DataIngestor:
        running.append(ingestor)
        return ingestor.start()

    yield start
    for ingestor in running:
        ingestor.stop(timeout=10)


def fast(**overrides: object) -> IngestSettings:
    return IngestSettings(**{"start": START.isoformat(), "timeframes": ("M1", "M5"), "poll_interval": 0.02,
                             "flush_interval": 0.05, "backoff_base": 0.02, "backoff_cap": 0.1, **overrides})


def source_bars(feed: EmbeddedSimulatorClient, tf: str) -> pd.DataFrame:
    now = feed.latest_tick("BTCUSD")["time"]
    return EmbeddedSimulatorClient.to_engine_bars(feed.bars_range("BTCUSD", tf, START, now.floor(tf.replace("M", "") + "min")))


def test_follows_the_feed_resumes_and_takes_only_closed_bars(feed: EmbeddedSimulatorClient, tmp_path: Path,
                                                             started: Callable) -> None:
    store = ParquetStore(tmp_path)
    ingestor = started(DataIngestor(feed, store, fast()))
    # 00:00..00:29 closed M1 bars (00:30 is forming), six M5 bars, a tick at each bar open up to 00:30.
    wait_for(lambda: ingestor.counters()["rows_written"] == 30 + 6 + 31)
    assert len(store.read_bars("BTCUSD", "M1")) == 30
    assert ingestor.stop(timeout=10)
    assert ingestor.counters()["duplicates"] == 0
    feed.simulator.advance(12)  # 00:42 now: while nothing runs, twelve more bars close
    again = started(DataIngestor(feed, store, fast()))
    wait_for(lambda: len(store.read_bars("BTCUSD", "M1")) == 42)
    feed.simulator.advance(3)
    wait_for(lambda: len(store.read_bars("BTCUSD", "M1")) == 45)
    assert again.stop(timeout=10)
    for tf in ("M1", "M5"):  # the bar forming at the feed's present is never stored
        pd.testing.assert_frame_equal(store.read_bars("BTCUSD", tf), source_bars(feed, tf), check_freq=False)
    assert len(store.read_ticks("BTCUSD")) == 46 and store.read_ticks("BTCUSD").index.is_unique
    assert again.counters()["duplicates"] == 0  # resumed after the stored rows: nothing asked for twice


def test_stop_writes_what_is_buffered_and_joins(feed: EmbeddedSimulatorClient, tmp_path: Path,
                                                started: Callable) -> None:
    store = ParquetStore(tmp_path)
    ingestor = started(DataIngestor(feed, store, fast(flush_interval=3600, batch_size=10**6)))
    wait_for(lambda: ingestor.counters()["buffered"] == 30 + 6 + 31)
    assert store.read_bars("BTCUSD", "M1").empty  # nothing due yet
    t0 = time.monotonic()
    assert ingestor.stop(timeout=10) and not ingestor.running
    assert time.monotonic() - t0 < 10 and len(store.read_bars("BTCUSD", "M1")) == 30
    assert ingestor.counters()["buffered"] == 0


def test_database_refusals_keep_every_row_and_pause_polling(feed: EmbeddedSimulatorClient, db_server: PgServer,
                                                            db_client: TimescaleDBClient, caplog) -> None:
    """While the database refuses writes nothing is dropped; a full buffer pauses polling (backpressure)."""
    caplog.set_level(logging.INFO, logger="engine.ingest")
    with db_client._tx() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS refuse_writes (on_ boolean)")
        cur.execute("INSERT INTO refuse_writes VALUES (true)")
        cur.execute("CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF EXISTS (SELECT 1 FROM refuse_writes) THEN RAISE EXCEPTION 'maintenance'; END IF; "
                    "RETURN NEW; END $$")
        for table in ("ticks", "ohlcv"):
            cur.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse()")
    own = TimescaleDBClient(**db_server.kwargs(), retries=0)  # a client is one connection: one per thread
    ingestor = DataIngestor(feed, own, fast(max_buffer_rows=40, log_interval=0.2))
    try:
        ingestor.start()
        wait_for(lambda: ingestor.counters()["backpressure"] >= 2 and ingestor.counters()["store_errors"] >= 2)
        c = ingestor.counters()
        assert c["rows_written"] == 0 and c["buffered"] >= 40
        feed.simulator.advance(10)  # more rows wait at the source while polling is paused
        with db_client._tx() as cur:
            cur.execute("DELETE FROM refuse_writes")
        wait_for(lambda: len(db_client.fetch_ohlcv("BTCUSD", timeframe="M1")) == 40)
        assert ingestor.stop(timeout=10)
    finally:
        ingestor.stop(timeout=10)
        own.close()
        with db_client._tx() as cur:
            for table in ("ticks", "ohlcv"):
                cur.execute(f"DROP TRIGGER IF EXISTS refuse ON {table}")
    for tf in ("M1", "M5"):
        pd.testing.assert_frame_equal(db_client.fetch_ohlcv("BTCUSD", timeframe=tf), source_bars(feed, tf),
                                      check_freq=False)
    assert len(db_client.fetch_ticks("BTCUSD")) == 41
    assert "polling paused" in caplog.text and "ingest: in " in caplog.text  # the periodic counter line


def test_impossible_rows_are_set_aside_and_counted(tmp_path: Path, started: Callable) -> None:
    index = pd.date_range("2024-03-04 00:00", periods=180, freq="1s", tz="UTC", name="timestamp")
    ticks = pd.DataFrame({"bid": 100.0, "ask": 100.5, "volume": 1.0}, index=index)
    ticks.iloc[7, ticks.columns.get_loc("ask")] = 99.0  # ask < bid
    settings = SimSettings(start="2024-03-04T00:02:00")  # step mode: the clock stands at 00:02:00
    with Simulator(ticks=ticks, settings=settings) as sim, \
            MT5RestClient(sim.url, "sim-dev-token", server_time_offset_hours=2) as client:
        store = ParquetStore(tmp_path)
        ingestor = started(DataIngestor(client, store, fast(timeframes=(), start="2024-03-04T00:00:00Z")))
        wait_for(lambda: ingestor.counters()["rows_written"] == 120)  # 00:00:00..00:02:00, one refused
        assert ingestor.stop(timeout=10)
    assert ingestor.counters()["rejected"] == 1
    assert len(store.read_ticks("BTCUSD")) == 120 and (store.read_ticks("BTCUSD")["ask"] >= 100).all()


def test_settings_refuse_what_cannot_be_ingested() -> None:
    with pytest.raises(ConfigError, match="weekly and monthly"):
        IngestSettings(timeframes=("W1",))
    with pytest.raises(ConfigError, match="nothing to ingest"):
        IngestSettings(ticks=False, timeframes=())
    with pytest.raises(ConfigError, match="positive duration"):
        IngestSettings(tick_span="soon")


class EvenMinutesOnly:
    """A cleaner (the DataCleaner protocol) that keeps bars opening at even minutes and every tick."""

    def clean_ohlcv(self, df: pd.DataFrame) -> pd.DataFrame:
        return df.loc[df.index.minute % 2 == 0]

    def clean_ticks(self, df: pd.DataFrame) -> pd.DataFrame:
        return df


def test_the_cleaner_hook_sees_every_poll_before_the_store(feed: EmbeddedSimulatorClient, tmp_path: Path,
                                                           started: Callable) -> None:
    store = ParquetStore(tmp_path)
    ingestor = started(DataIngestor(feed, store, fast(timeframes=("M1",)), cleaner=EvenMinutesOnly()))
    wait_for(lambda: ingestor.counters()["rows_written"] == 15 + 31)
    assert ingestor.stop(timeout=10)
    bars = store.read_bars("BTCUSD", "M1")
    assert list(bars.index.minute) == list(range(0, 30, 2))
