"""bench/ingest.py part ``pipeline``: simulator -> DataIngestor -> store, against the simulator's raw serving rate.

- Raw serving rate: a plain MT5RestClient asks the simulator for the same windows the ingestor asks for
  (ticks in ``tick_span`` windows; M1 bars in ``max_bars`` chunks), back to back, storing nothing.
- Sustained throughput: the whole data set is visible at once (replay far ahead), the ingestor starts from its
  beginning and runs until every row is written: rows/s of the write path end to end.
- Lag: the replay runs at a pace the path keeps up with; a row's lag is the wall time from the moment the
  replay clock passes it (it becomes visible at the simulator) to the commit of the batch that holds it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.ingest import DataIngestor, IngestSettings
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient

T0 = pd.Timestamp("2024-03-04 00:00", tz="UTC")


def quotes(hours: float, per_second: float = 10.0, seed: int = 3) -> pd.DataFrame:
    n = int(hours * 3600 * per_second)
    rng = np.random.default_rng(seed)
    ms = np.sort(rng.choice(int(hours * 3600 * 1000), n, replace=False))
    bid = (60_000 + np.cumsum(rng.normal(0, 0.5, n))).round(2)
    return pd.DataFrame({"bid": bid, "ask": bid + 1.5, "volume": rng.integers(1, 9, n) / 100},
                        index=pd.DatetimeIndex(T0 + pd.to_timedelta(ms, unit="ms"), name="timestamp"))


def raw_rate(sim: Simulator, kind: str, start: pd.Timestamp, end: pd.Timestamp,
             span: pd.Timedelta) -> tuple[int, float]:
    """Rows the simulator serves over [start, end) (what is visible at its clock) and rows/s doing so."""
    rows = 0
    with MT5RestClient(sim.url, DEV_TOKEN, server_time_offset_hours=2, max_bars=sim.settings.max_bars) as client:
        t0 = time.perf_counter()
        lo = start
        while lo < end:
            hi = min(lo + span, end)
            frame = client.ticks_range("BTCUSD", lo, hi) if kind == "ticks" else client.bars_range("BTCUSD", "M1", lo, hi)
            rows += len(frame)
            lo = hi
        return rows, rows / (time.perf_counter() - t0)


def _run(sim: Simulator, store: object, settings: IngestSettings, until: Callable[[dict], bool],
         on_commit: Callable | None = None, seconds: float = 600.0) -> tuple[dict, float]:
    with MT5RestClient(sim.url, DEV_TOKEN, server_time_offset_hours=2, max_bars=sim.settings.max_bars) as client:
        ingestor = DataIngestor(client, store, settings, on_commit=on_commit).start()
        t0 = time.perf_counter()
        deadline = time.monotonic() + seconds
        while not until(ingestor.counters()) and time.monotonic() < deadline and ingestor.running:
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        ingestor.stop(timeout=60)
        ingestor.raise_if_failed()
        return ingestor.counters(), elapsed


def _settings(**kw: object) -> IngestSettings:
    return IngestSettings(**{"start": T0.isoformat(), "poll_interval": 0.05, "flush_interval": 0.25,
                             "batch_size": 50_000, "tick_span": "10min", "log_interval": 3600.0, **kw})


def _fresh(store: object) -> object:
    if isinstance(store, TimescaleDBClient):
        with store._tx() as cur:
            cur.execute("TRUNCATE ticks, ohlcv")
    return store


def one_store(name: str, make_store: Callable[[], object], seconds: float) -> None:
    ticks = quotes(hours=6)
    bars = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1").loc["2024-01-01":"2024-03-30"]
    print(f"\npipeline into {name}: {len(ticks):,} ticks (10/s of replay time), {len(bars):,} real M1 bars")
    print(f"{'case':<52}{'rows/s':>12}{'raw serve/s':>13}{'ratio':>7}")
    # Throughput: everything is visible at once.
    ahead = SimSettings(start=ticks.index[-1].isoformat(), max_bars=10_000)
    with Simulator(ticks=ticks, settings=ahead) as sim:
        want, raw = raw_rate(sim, "ticks", T0, ticks.index[-1] + pd.Timedelta(seconds=1), pd.Timedelta("10min"))
        counts, secs = _run(sim, _fresh(make_store()), _settings(timeframes=()), lambda c: c["rows_written"] >= want)
        rate = counts["rows_written"] / secs
        print(f"{'ticks, sustained (all visible, from the start)':<52}{rate:>12,.0f}{raw:>13,.0f}{rate / raw:>7.2f}")
    with Simulator(bars=bars, settings=SimSettings(max_bars=10_000)) as sim:
        want, raw = raw_rate(sim, "bars", bars.index[0], bars.index[-1], pd.Timedelta(minutes=10_000))
        counts, secs = _run(sim, _fresh(make_store()), _settings(ticks=False, timeframes=("M1",),
                                                                 start=bars.index[0].isoformat()),
                            lambda c: c["rows_written"] >= want)
        rate = counts["rows_written"] / secs
        print(f"{'M1 bars, sustained (all visible, from the start)':<52}{rate:>12,.0f}{raw:>13,.0f}{rate / raw:>7.2f}")
    # Lag: ticks appear at 100x their replay pace (1,000 ticks/s); measured per row, visible -> committed.
    speed = 100.0
    lags: list[np.ndarray] = []
    with Simulator(ticks=ticks, settings=SimSettings(start=T0.isoformat(), speed=speed)) as sim:
        wall0 = sim.market.replay._wall0  # the replay's own zero: when its clock stood at T0 (bench-only peek)
        t0_us = T0.value // 1_000

        def commit(series: str, batch: pd.DataFrame, committed: float) -> None:
            visible = wall0 + (batch.index.as_unit("us").asi8 - t0_us) / 1e6 / speed
            lags.append(committed - visible)

        counts, secs = _run(sim, _fresh(make_store()), _settings(timeframes=(), poll_interval=0.05,
                                                                 flush_interval=0.1),
                            lambda c: False, on_commit=commit, seconds=seconds)
    lag = np.concatenate(lags) if lags else np.array([np.nan])
    print(f"lag at {counts['rows_written'] / secs:,.0f} ticks/s arriving ({speed:.0f}x replay, {seconds:.0f}s): "
          f"p50 {np.percentile(lag, 50) * 1000:,.0f} ms, p99 {np.percentile(lag, 99) * 1000:,.0f} ms "
          f"(poll every 50 ms, write every 100 ms)")


def pipeline_part(servers: list[str], seconds: float, start: Callable) -> None:
    from tests.tsdbcluster import TimescaleUnavailable

    with tempfile.TemporaryDirectory() as tmp:
        one_store("ParquetStore", lambda: ParquetStore(Path(tmp) / f"p{time.monotonic_ns()}"), seconds)
    for name in servers:
        try:
            server = start(name)
        except TimescaleUnavailable as exc:
            print(f"\n{name}: skipped ({exc})")
            continue
        try:
            _database(server, seconds)
        finally:
            server.stop()


def _database(server: object, seconds: float) -> None:
    with TimescaleDBClient(**server.kwargs()) as db:
        db.create_schema()
        label = "TimescaleDB" if db.hypertables else "PostgreSQL"
    clients: list[TimescaleDBClient] = []

    def make() -> TimescaleDBClient:
        clients.append(TimescaleDBClient(**server.kwargs()))  # one connection per ingestor thread
        clients[-1].create_schema()
        return clients[-1]

    try:
        one_store(label, make, seconds)
    finally:
        for client in clients:
            client.close()
