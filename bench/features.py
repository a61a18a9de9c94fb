"""Benchmark: the standard indicator set on 1,000,000 real 1m bars, engine vs TA-Lib (and `ta`) in one run.

    .venv/bin/python bench/features.py [--rows 1000000] [--repeat 7] [--skip-ta]

Bars are real Binance BTC/USDT 1m bars (../shared/data 2022 + 2023 files, else the bundled sample tiled).
Prints the time of each side, the ratio engine/TA-Lib (goal <= 1.5) and the largest relative
difference after warm-up, so speed is never bought with wrong numbers. Both sides are called once before
timing (numba's JIT and TA-Lib's first call); the one-off JIT cost is measured apart, in fresh processes:
compiling into an empty numba cache, then loading from that cache (what every later process pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from engine.data import indicators as ind
from engine.data.features import FeatureEngineering

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# The standard set's TA-Lib-covered indicators (conf/features/standard.yaml, base timeframe).
STANDARD = dict(timeframes=["1min"])


def load(rows: int) -> pd.DataFrame:
    files = [SHARED / "btcusdt_binance_1m_2022.csv.gz", SHARED / "btcusdt_binance_1m_2023.csv.gz"]
    if all(f.exists() for f in files):
        df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    else:
        from engine.sources.csv import SAMPLE_PATH

        df = pd.read_csv(SAMPLE_PATH)
        df = pd.concat([df] * (rows // len(df) + 1), ignore_index=True)
        df["timestamp"] = pd.date_range("2020-01-01", periods=len(df), freq="1min", tz="UTC")
    df = df.iloc[:rows]
    idx = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="timestamp")
    return df.set_index(idx).astype("float64")


_FIRST_CALL = """
import time
import numpy as np
t0 = time.perf_counter()
from engine.data import indicators as ind
t1 = time.perf_counter()
x = np.linspace(1.0, 2.0, 200)
frozen = x.copy()
frozen.flags.writeable = False  # pandas (copy-on-write) hands out read-only arrays: a second specialisation
for a in (x, frozen):
    ind.rsi(a, 14), ind.macd(a), ind.ema(a, 20), ind.bbands(a, 20), ind.atr(a, a, a, 14), ind.sma(a, 20)
print(t1 - t0, time.perf_counter() - t1)
"""


def first_call_costs() -> list[tuple[str, float]]:
    """Import and first-call seconds of the kernels in fresh processes: cold numba cache, then warm."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        root = str(Path(__file__).resolve().parents[1])
        for what in ("compile (empty numba cache, once per machine)", "load from numba cache (every process)"):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, cwd=root, check=True,
                                 capture_output=True, text=True).stdout.split()
            rows.append((f"  first calls, {what}", float(out[1])))
        rows.append(("  import engine.data.indicators (numba import)", float(out[0])))
    return rows


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    out = fn()  # warm caches and allocator once
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--skip-ta", action="store_true", help="skip the slow `ta` reference (~5 s)")
    args = parser.parse_args()
    import talib

    console = Console()
    with console.status(f"loading {args.rows:,} bars"):
        bars = load(args.rows)
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))

    def talib_set() -> dict[str, np.ndarray]:
        macd, sig, hist = talib.MACD(c, 12, 26, 9)
        up, mid, low = talib.BBANDS(c, 20, 2, 2)
        return {"rsi": talib.RSI(c, 14), "macd": macd, "macd_signal": sig, "macd_hist": hist,
                "ema": talib.EMA(c, 20), "sma": talib.SMA(c, 20), "bb_upper": up, "bb_middle": mid,
                "bb_lower": low, "atr": talib.ATR(h, lo, c, 14)}

    def engine_set() -> dict[str, np.ndarray]:
        macd, sig, hist = ind.macd(c, 12, 26, 9)
        up, mid, low = ind.bbands(c, 20, 2.0)  # the SMA-20 is the band's middle, as in add_indicators
        return {"rsi": ind.rsi(c, 14), "macd": macd, "macd_signal": sig, "macd_hist": hist,
                "ema": ind.ema(c, 20), "sma": mid, "bb_upper": up, "bb_middle": mid, "bb_lower": low,
                "atr": ind.atr(h, lo, c, 14)}

    fe = FeatureEngineering(**STANDARD)
    fe_mtf = FeatureEngineering(timeframes=["1min", "5min"])
    rows: list[tuple[str, float]] = []
    with console.status("timing"):
        # Warm-up (JIT, TA-Lib's first call), then interleaved rounds, best of each: other jobs on the
        # machine slow both sides alike.
        ref, ours = talib_set(), engine_set()
        t_talib = t_engine = float("inf")
        for _ in range(args.repeat):
            t_talib = min(t_talib, timed(talib_set, 1)[0])
            t_engine = min(t_engine, timed(engine_set, 1)[0])
        t_add, _ = timed(lambda: fe.add_indicators(bars), max(3, args.repeat // 2))
        t_transform, X = timed(lambda: fe_mtf.transform(bars), 3)
    worst = 0.0
    for key, r in ref.items():
        ok = ~np.isnan(r)
        scale = np.maximum(np.abs(r[ok]), 1.0)  # MACD crosses zero: compare against 1 USD there
        worst = max(worst, float(np.max(np.abs(ours[key][ok] - r[ok]) / scale)))
    rows += [("TA-Lib: RSI14, MACD12/26/9, EMA20, SMA20, BBANDS20, ATR14", t_talib),
             ("engine kernels, same indicators", t_engine),
             ("engine add_indicators(standard, 1m) incl. VWAP 60 + day, DataFrame", t_add),
             (f"engine transform(standard 1m+5m) -> {X.shape[1]} features", t_transform)]
    t_ema, _ = timed(lambda: talib.EMA(c, 20), args.repeat)
    t_our_ema, _ = timed(lambda: ind.ema(c, 20), args.repeat)
    rows += [("  TA-Lib EMA20 alone", t_ema), ("  engine EMA20 alone", t_our_ema)]
    with console.status("first-call (JIT) costs in fresh processes"):
        once = first_call_costs()
    if not args.skip_ta:
        import ta

        cs, hs, ls = bars["close"], bars["high"], bars["low"]

        def ta_set() -> None:
            ta.momentum.RSIIndicator(cs, 14).rsi()
            m = ta.trend.MACD(cs, 26, 12, 9)
            m.macd(), m.macd_signal(), m.macd_diff()
            ta.trend.EMAIndicator(cs, 20).ema_indicator()
            ta.trend.SMAIndicator(cs, 20).sma_indicator()
            b = ta.volatility.BollingerBands(cs, 20, 2)
            b.bollinger_hband(), b.bollinger_mavg(), b.bollinger_lband()
            ta.volatility.AverageTrueRange(hs, ls, cs, 14).average_true_range()

        t_ta, _ = timed(ta_set, 1)
        rows.append(("`ta` classes, same indicators", t_ta))
    table = Table(title=f"standard indicator set on {len(bars):,} 1m bars (TA-Lib vs engine kernels: best of "
                        f"{args.repeat} interleaved rounds; other rows: median)")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("x TA-Lib", justify="right")
    for name, secs in rows:
        table.add_row(name, f"{secs:.4f}", f"{secs / t_talib:.2f}")
    for name, secs in once:  # one-off costs, not comparable with a per-call time
        table.add_row(name, f"{secs:.3f}", "")
    console.print(table)
    console.print(f"ratio engine/TA-Lib = {t_engine / t_talib:.2f} (goal <= 1.5); "
                  f"max relative difference after warm-up = {worst:.1e}")


if __name__ == "__main__":
    main()
