"""Exactly-once ingestion on real services: every source row is stored once after faults, a database restart
and two SIGKILLed ingestor processes.

The simulator replays an hour of ticks (built inside the real BTC 1m bars of the bundled sample, with
distinct quotes sharing a millisecond) at 1200x and answers 20% of requests with 503. Between it and the
ingestor a proxy stalls answers past the client's read timeout, cuts lists short, cuts bodies in half,
repeats rows and drops connections. The ingestor runs as ``python -m engine task=ingest`` against the real
PostgreSQL or TimescaleDB cluster: killed with SIGKILL at a quarter of the ticks, the database restarted at
half, killed again at three quarters, and finally stopped with SIGTERM once caught up. The store is then
compared row by row with what the simulator serves without faults.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.secrets import SecureConfig, generate_key
from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.timescaledb import TimescaleDBClient
from tests.ingest.faulty_proxy import FaultyProxy, ProxyFaults
from tests.pgcluster import PgServer
from tests.service_fixtures import restart

START = pd.Timestamp("2024-03-05 00:00", tz="UTC")
HOURS = 1


def source_ticks(seed: int = 11) -> pd.DataFrame:
    """Quotes inside each real minute bar: from the open, within [low, high], to the close; 3% of them have a
    twin in the same millisecond at another price (distinct ticks the store must keep apart)."""
    bars = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1")
    bars = bars.loc[START:START + pd.Timedelta(hours=HOURS) - pd.Timedelta(minutes=1)]
    rng = np.random.default_rng(seed)
    frames = []
    for t, bar in bars.iterrows():
        n = 25
        offsets = np.sort(rng.choice(59_000, n - 1, replace=False)) + 500
        ms = np.r_[0, offsets]
        bid = bar["low"] + (bar["high"] - bar["low"]) * rng.random(n)
        bid[0], bid[-1] = bar["open"], bar["close"]
        frames.append(pd.DataFrame({"bid": bid.round(2), "volume": rng.integers(1, 50, n) / 100},
                                   index=t + pd.to_timedelta(ms, unit="ms")))
    ticks = pd.concat(frames)
    twins = ticks.iloc[rng.choice(len(ticks), len(ticks) * 3 // 100, replace=False)].copy()
    twins["bid"] = (twins["bid"] - 0.37).round(2)
    ticks = pd.concat([ticks, twins]).sort_index(kind="stable")
    ticks["ask"] = (ticks["bid"] + 5.0).round(2)
    ticks.index.name = "timestamp"
    return ticks[["bid", "ask", "volume"]]


def wait_for(what: str, condition: Callable[[], bool], seconds: float, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the ingestor exited ({proc.returncode}) before {what}:\n"
                                 f"{log.read_text()[-4000:] if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.1)


def count(db: TimescaleDBClient, table: str) -> int:
    def run() -> int:
        with db._tx() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    return db._retrying("count", run)  # the test's own connection also lives through the restart


def test_every_source_row_is_stored_exactly_once(db_server: PgServer, tmp_path: Path) -> None:
    ticks = source_ticks()
    settings = SimSettings(speed=1200.0, start=START.isoformat(), error_rate=0.2, seed=5)
    faults = ProxyFaults(stall_rate=0.02, stall_seconds=0.6, truncate_rate=0.25, cut_body_rate=0.03,
                         duplicate_rate=0.1, drop_rate=0.03, seed=5)
    with TimescaleDBClient(**db_server.kwargs()) as db:
        db.create_schema()
        with db._tx() as cur:
            cur.execute("TRUNCATE ohlcv, ticks")
    with Simulator(ticks=ticks, settings=settings) as sim, FaultyProxy(sim.url, faults) as proxy, \
            TimescaleDBClient(**db_server.kwargs()) as db:
        key = generate_key()  # the process reads the API key and the password from an encrypted secrets file
        SecureConfig(tmp_path / "secrets.enc", key).write({"mt5_api_key": DEV_TOKEN, "db_password": db_server.password})
        args = [sys.executable, "-m", "engine", "task=ingest", "tracking=off", "connector=mt5_rest",
                f"connector.base_url={proxy.url}", "connector.read_timeout=0.5",
                "connector.connect_timeout=1.0", "connector.retries=2", "connector.backoff_base=0.02",
                "connector.backoff_cap=0.2", "connector.server_time_offset_hours=2", "connector.max_bars=40",
                "storage=timescaledb", *(f"storage.{k}={v}" for k, v in db_server.kwargs().items() if k != "password"),
                "storage.retries=2", "storage.retry_base=0.2", f"task.start={START.isoformat()}",
                "task.timeframes=[M1,M5]", "task.tick_span=3min", "task.poll_interval=0.1",
                "task.flush_interval=0.3", "task.batch_size=400", "task.backoff_base=0.05", "task.backoff_cap=0.5",
                "task.display=false", "task.stop_timeout=15"]
        env = {**os.environ, "ENGINE_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1", "CONFIG_AES_KEY": key}
        logs: list[Path] = []

        def launch() -> subprocess.Popen:
            logs.append(tmp_path / f"ingest-{len(logs)}.log")
            with open(logs[-1], "w") as out:
                return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)

        total = len(ticks)
        t0 = time.monotonic()
        first = launch()
        wait_for("a quarter of the ticks", lambda: count(db, "ticks") >= total / 4, 90, first, logs[-1])
        first.send_signal(signal.SIGKILL)
        second = launch()
        wait_for("half of the ticks", lambda: count(db, "ticks") >= total / 2, 90, second, logs[-1])
        restart(db_server)  # the database goes away under a running ingestor and comes back
        wait_for("three quarters", lambda: count(db, "ticks") >= total * 3 / 4, 90, second, logs[-1])
        second.send_signal(signal.SIGKILL)
        runs = [first.wait(timeout=30), second.wait(timeout=30)]
        last = launch()
        sim.faults.settings = dataclasses.replace(settings, error_rate=0.0)  # the truth is read without faults
        with MT5RestClient(sim.url, DEV_TOKEN, server_time_offset_hours=2) as clean:
            now = clean.latest_tick("BTCUSD")["time"]
            want_m1 = clean.bars_range("BTCUSD", "M1", START, now.floor("1min"))
            want_m5 = clean.bars_range("BTCUSD", "M5", START, now.floor("5min"))
        sim.faults.settings = settings
        try:
            wait_for("every row", lambda: (count(db, "ticks") >= total
                                           and count(db, "ohlcv") >= len(want_m1) + len(want_m5)), 60, last, logs[-1])
        finally:
            for proc in (first, second, last):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            stopped = last.wait(timeout=60)
            stored = db.fetch_ticks("BTCUSD")
            m1, m5 = db.fetch_ohlcv("BTCUSD", timeframe="M1"), db.fetch_ohlcv("BTCUSD", timeframe="M5")
            want = ticks.reset_index().sort_values(["timestamp", "bid", "ask", "volume"]).set_index("timestamp")
            gaps = [(what, sorted(set(a.index) - set(b.index))[:3]) for what, a, b in
                    (("ticks", want, stored), ("M1", want_m1, m1), ("M5", want_m5, m5))]
            if any(missing for _, missing in gaps):
                print(f"\nmissing rows (first): {gaps}")
        assert stopped == 0, logs[-1].read_text()[-4000:]
        assert "stopped cleanly" in logs[-1].read_text()
        assert runs == [-signal.SIGKILL, -signal.SIGKILL]
    print(f"\n[{type(db_server).__name__}] {time.monotonic() - t0:.1f}s; source: {len(want)} ticks, {len(want_m1)} M1 and {len(want_m5)} M5 bars; "
          f"stored: {len(stored)} ticks, {len(m1)} M1, {len(m5)} M5; proxy faults {faults.counts}; "
          f"ingestor runs: 2 killed, 1 stopped; database restarted once")
    assert len(stored) == len(want) and len(m1) == len(want_m1) and len(m5) == len(want_m5)
    pd.testing.assert_frame_equal(stored, want, check_freq=False, check_index_type=False)
    for got, expected in ((m1, want_m1), (m5, want_m5)):
        expected = expected[["open", "high", "low", "close", "real_volume"]].rename(columns={"real_volume": "volume"})
        pd.testing.assert_frame_equal(got, expected.astype("float64"), check_freq=False, check_index_type=False)
    assert faults.counts.get("503", 0) >= 20 and faults.counts.get("truncate", 0) >= 3 and len(faults.counts) >= 4


pytestmark = pytest.mark.slow
