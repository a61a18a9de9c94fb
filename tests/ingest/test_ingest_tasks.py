"""task=ingest and task=backfill through ``python -m engine``: clean stops, smoke runs, resumed backfills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.parquet import ParquetStore


def engine_process(root: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = root / f"engine-{time.monotonic_ns()}.log"
    env = {**os.environ, "ENGINE_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "engine", *args, "tracking=off"], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def wait_until(condition, proc: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_ingest_smoke_run_ends_by_itself(run_engine, engine_root: Path) -> None:
    proc = run_engine("task=ingest", "smoke=true", "task.smoke_seconds=4", "task.flush_interval=0.5",
                      "tracking=off", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rows/s" in proc.stderr and "lag" in proc.stderr and "errors feed 0 store 0" in proc.stderr
    assert "ingest: stopped cleanly" in proc.stderr
    store = ParquetStore(engine_root / "data" / "raw")
    assert len(store.read_ticks("BTCUSD")) > 0 and len(store.read_bars("BTCUSD", "M1")) > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ingest_stops_cleanly_on_a_signal(engine_root: Path, sig: signal.Signals) -> None:
    proc, log = engine_process(engine_root, "task=ingest", "task.flush_interval=0.2", "task.display_interval=0.2")
    try:
        m1 = engine_root / "data" / "raw" / "ohlcv" / "BTCUSD" / "M1"
        wait_until(lambda: m1.is_dir() and any(m1.glob("*.parquet")), proc, log)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert "ingest: stopped cleanly" in out and "Traceback" not in out
    bars = ParquetStore(engine_root / "data" / "raw").read_bars("BTCUSD", "M1")
    assert bars.index.is_unique and len(bars) > 0


def test_backfill_is_chunked_and_resumes_after_an_interruption(engine_root: Path) -> None:
    args = ("task=backfill", "task.start=2024-03-01", "connector.max_bars=500", "connector.client_max_bars=500")
    proc, log = engine_process(engine_root, *args)
    try:
        m1 = engine_root / "data" / "raw" / "ohlcv" / "BTCUSD" / "M1"
        wait_until(lambda: m1.is_dir() and any(m1.glob("*.parquet")), proc, log)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "backfill interrupted" in log.read_text()
    store = ParquetStore(engine_root / "data" / "raw")
    part = store.read_bars("BTCUSD", "M1")
    assert 0 < len(part) < 44_639

    again, log2 = engine_process(engine_root, *args)
    assert again.wait(timeout=120) == 0, log2.read_text()[-3000:]
    out = log2.read_text()
    assert f"BTCUSD M1: resumed after {part.index[-1].isoformat()}; " in out and "interrupted" not in out
    # The sample's March bars, each once; the simulator's clock stands at the last bar, which is still forming.
    want = CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1").loc["2024-03-01":"2024-03-31 23:58"]
    got = store.read_bars("BTCUSD", "M1")
    pd.testing.assert_frame_equal(got, want, check_freq=False)
