"""ParquetStore write/read of one year of real 1m bars against plain pandas Parquet I/O, same run.

The store adds monthly partitioning, upsert merging, a folder lock and fsync per file; the reference
is one ``DataFrame.to_parquet`` / ``read_parquet`` of the same frame (zstd). Run:
    .venv/bin/python bench/storage.py [--repeat 3]
Needs ../shared/data (the 2024 file); falls back to the bundled Q1 sample.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from engine.sources.csv import SAMPLE_PATH, CsvBarSource
from engine.storage.parquet import ParquetStore

YEAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "btcusdt_binance_1m_2024.csv.gz"


def timed(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = YEAR if YEAR.exists() else SAMPLE_PATH
    bars = CsvBarSource(str(path)).load_bars("BTCUSD", "M1")
    print(f"{len(bars):,} bars from {path.name}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def store_fresh() -> None:
            target = root / f"s{time.perf_counter_ns()}"
            ParquetStore(target).write_bars(bars, "BTCUSD", "M1")

        def plain_write() -> None:
            bars.to_parquet(root / f"p{time.perf_counter_ns()}.parquet", compression="zstd")

        ParquetStore(root / "keep").write_bars(bars, "BTCUSD", "M1")
        bars.to_parquet(root / "keep.parquet", compression="zstd")
        results = {
            "write fresh: ParquetStore": timed(store_fresh, args.repeat),
            "write fresh: to_parquet": timed(plain_write, args.repeat),
            "re-write (upsert, all present): ParquetStore": timed(
                lambda: ParquetStore(root / "keep").write_bars(bars, "BTCUSD", "M1"), args.repeat),
            "read all: ParquetStore": timed(lambda: ParquetStore(root / "keep").read_bars("BTCUSD", "M1"),
                                            args.repeat),
            "read all: read_parquet": timed(lambda: pd.read_parquet(root / "keep.parquet"), args.repeat),
        }
    print(f"{'case':<48}{'median s':>10}{'rows/s':>14}")
    for name, sec in results.items():
        print(f"{name:<48}{sec:>10.3f}{len(bars) / sec:>14,.0f}")
    print(f"ratio write (store / plain): {results['write fresh: ParquetStore'] / results['write fresh: to_parquet']:.2f}x")
    print(f"ratio read  (store / plain): {results['read all: ParquetStore'] / results['read all: read_parquet']:.2f}x")


if __name__ == "__main__":
    main()
