"""ParquetStore keeps every file inside its root and cleans up after a writer killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataQualityError
from engine.storage.parquet import ParquetStore


def bars(n: int = 30) -> pd.DataFrame:
    index = pd.date_range("2024-06-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
                        index=index)


@pytest.mark.parametrize("symbol", ["../../../../escaped", "..", ".", "a/b", "/abs", "BTC\x00USD", "",
                                    ".hidden", "x" * 65, "BTC\\USD"])
def test_a_symbol_cannot_leave_the_store(tmp_path: Path, symbol: str) -> None:
    root = tmp_path / "project" / "data" / "raw"
    store = ParquetStore(root)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(DataQualityError, match="not a broker symbol"):
        store.write_bars(bars(), symbol, "M1")
    with pytest.raises(DataQualityError, match="not a broker symbol"):
        store.write_ticks(bars().rename(columns={"open": "bid", "high": "ask"}), symbol)
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("symbol", ["BTCUSD", "EURUSD.m", "US500#", "#AAPL", "BRN-SEP24", "XAU_USD"])
def test_broker_symbols_are_accepted(tmp_path: Path, symbol: str) -> None:
    store = ParquetStore(tmp_path)
    assert store.write_bars(bars(), symbol, "M1") == 30
    assert len(store.read_bars(symbol, "M1")) == 30
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in tmp_path.rglob("*"))


def test_a_symlinked_symbol_folder_cannot_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    (root / "ohlcv").mkdir(parents=True)
    (root / "ohlcv" / "BTCUSD").symlink_to(outside)
    with pytest.raises(DataQualityError, match="resolves outside"):
        ParquetStore(root).write_bars(bars(), "BTCUSD", "M1")
    assert not any(outside.iterdir())


_WRITER = """
import sys
import numpy as np, pandas as pd
from engine.storage.parquet import ParquetStore
n = 400_000
index = pd.date_range("2024-06-01", periods=n, freq="1ms", tz="UTC", name="timestamp")
rng = np.random.default_rng(0)
ticks = pd.DataFrame({"bid": 100 + rng.random(n), "ask": 101 + rng.random(n), "volume": rng.random(n)}, index=index)
store = ParquetStore(sys.argv[1])
while True:
    ticks["volume"] = rng.random(n)  # new rows every round: each round rewrites the day file
    store.write_ticks(ticks, "BTCUSD")
"""


def test_temp_files_of_a_killed_writer_are_removed_by_the_next(tmp_path: Path) -> None:
    folder = tmp_path / "ticks" / "BTCUSD"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while not list(folder.glob(".*.tmp")):  # wait until the writer is inside a write
            assert proc.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer never started a write"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = list(folder.glob(".*.tmp"))
    assert left, "SIGKILL should have left the temporary file behind"
    unrelated = folder / ".notes.tmp"  # not a name the store writes: left alone
    unrelated.write_text("keep")
    store = ParquetStore(tmp_path)
    extra = pd.DataFrame({"bid": [1.0], "ask": [1.5], "volume": [0.0]},
                         index=pd.DatetimeIndex(["2024-06-01 12:00"], tz="UTC", name="timestamp"))
    assert store.write_ticks(extra, "BTCUSD") == 1
    assert not any(p.exists() for p in left) and unrelated.exists()
    stored = store.read_ticks("BTCUSD")  # every committed month/day file is still readable
    assert stored.index.max() == extra.index[0]
