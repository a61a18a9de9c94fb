"""Benchmark: engine's whole backtest vs vectorbt's ``Portfolio.from_signals`` on 1,000,000 real 1m bars.

    .venv/bin/python bench/backtest.py [--rows 1000000] [--repeat 7] [--lookback 60]

Bars: real Binance BTC/USDT 1m bars (../shared/data 2024 + 2025 files). Signal: deterministic momentum,
the sign of the close-to-close return over ``--lookback`` bars, decided at each close; both sides fill it
at the next bar's open.

Shared settings (what both engines model the same way): 1 lot (1 BTC) per trade, long and short, reversals
at one open, every fill paying 2.5 bp of its notional (half a 2 bp spread + 0.5 bp slippage + 1 bp
commission = vectorbt's ``fees``), no stops, no cash limit (10,000,000 of equity). The signal is forced flat
on the last two bars so both books end flat (vectorbt values an open position at the last close without
charging its exit; engine liquidates it there and charges it).

Timed, best of ``--repeat`` interleaved rounds after one warm-up call each (numba JIT on both sides):
engine = ``run_backtest`` (fills, equity, the trades table and every metric); vectorbt = the
``Portfolio.from_signals`` call alone (its simulation; trades and stats are computed later, on demand).
Agreement: number of trades, each trade's entry and exit price, and the final equity (relative).
Also timed, for scale only (vectorbt is not asked to match them): engine with risk sizing and ATR stops,
and the rebalance model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.indicators import atr
from engine.trading.backtest import BacktestSettings, run_backtest
from engine.trading.risk_rules import RiskLimits

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = ("btcusdt_binance_1m_2024.csv.gz", "btcusdt_binance_1m_2025-01_to_2025-11.csv.gz",
         "btcusdt_binance_1m_2023.csv.gz")
SHARED_SETTINGS = BacktestSettings(sizing="lots", fixed_lots=1.0, initial_equity=10_000_000.0, volume_max=1e6)
NO_CAP = RiskLimits(max_position_size=1e9)


def load(rows: int) -> pd.DataFrame:
    frames = []
    for name in FILES:
        if sum(len(f) for f in frames) >= rows:
            break
        frames.append(pd.read_csv(SHARED / name))
    df = pd.concat(frames, ignore_index=True).iloc[:rows]
    idx = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="timestamp")
    bars = df.set_index(idx).astype("float64")
    if not bars.index.is_monotonic_increasing:
        bars = bars.sort_index()
    return bars


def momentum(close: pd.Series, lookback: int) -> pd.Series:
    sig = np.sign(close / close.shift(lookback) - 1.0).fillna(0.0)
    sig.iloc[-2:] = 0.0  # both books end flat (see the module docstring)
    return sig


def engine_run(signals: pd.Series, bars: pd.DataFrame, settings: BacktestSettings = SHARED_SETTINGS,
               atr_values: np.ndarray | None = None) -> Any:
    return run_backtest(signals, bars, settings, bar_seconds=60, limits=NO_CAP, atr=atr_values)


def vectorbt_run(signals: pd.Series, bars: pd.DataFrame) -> Any:
    import vectorbt as vbt

    held = np.concatenate([[0.0], signals.to_numpy()[:-1]])  # the decision of bar j-1, filled at open[j]
    return vbt.Portfolio.from_signals(
        close=bars["close"], price=bars["open"], entries=held == 1, exits=held != 1, short_entries=held == -1,
        short_exits=held != -1, size=SHARED_SETTINGS.fixed_lots, size_type="amount",
        fees=SHARED_SETTINGS.cost_rate, init_cash=SHARED_SETTINGS.initial_equity, freq="1min")


def best_of(rounds: int, named: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    for fn in named.values():
        fn()  # warm-up: JIT, caches
    times: dict[str, list[float]] = {k: [] for k in named}
    for _ in range(rounds):
        for name, fn in named.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def agreement(engine: Any, pf: Any) -> dict[str, Any]:
    records = pf.trades.records_readable
    ours = engine.trades
    same_count = len(records) == len(ours)
    prices_equal = same_count and np.allclose(records["Avg Entry Price"].to_numpy(), ours["entry_price"].to_numpy(),
                                              rtol=0, atol=1e-9) and \
        np.allclose(records["Avg Exit Price"].to_numpy(), ours["exit_price"].to_numpy(), rtol=0, atol=1e-9)
    final_engine = float(engine.equity.iloc[-1])
    final_vbt = float(pf.final_value())
    return {"trades_engine": len(ours), "trades_vectorbt": len(records), "trade_prices_equal": bool(prices_equal),
            "final_equity_engine": final_engine, "final_equity_vectorbt": final_vbt,
            "final_equity_rel_diff": abs(final_engine / final_vbt - 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--lookback", type=int, default=60)
    args = parser.parse_args()

    bars = load(args.rows)
    signals = momentum(bars["close"], args.lookback)
    atr14 = atr(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), 14)
    risk = BacktestSettings(sizing="risk", stop_loss=2.0, take_profit=4.0, stop_unit="atr",
                            initial_equity=10_000_000.0, volume_max=1e6)
    rebalance = BacktestSettings(sizing="rebalance", initial_equity=10_000_000.0)
    times = best_of(args.repeat, {
        "engine": lambda: engine_run(signals, bars),
        "vectorbt": lambda: vectorbt_run(signals, bars),
        "engine_risk_atr_stops": lambda: engine_run(signals, bars, risk, atr14),
        "engine_rebalance": lambda: engine_run(signals, bars, rebalance),
    })
    check = agreement(engine_run(signals, bars), vectorbt_run(signals, bars))
    best = {k: min(v) for k, v in times.items()}
    out = {"rows": len(bars), "first": str(bars.index[0]), "last": str(bars.index[-1]), "repeat": args.repeat,
           "seconds_best": best, "seconds_median": {k: statistics.median(v) for k, v in times.items()},
           "ratio_engine_to_vectorbt": best["engine"] / best["vectorbt"], **check}
    print(json.dumps(out, indent=2))
    goal = out["ratio_engine_to_vectorbt"] <= 0.25 and check["trade_prices_equal"] \
        and check["final_equity_rel_diff"] <= 1e-6
    print(f"engine {best['engine']:.3f} s vs vectorbt from_signals {best['vectorbt']:.3f} s: "
          f"{out['ratio_engine_to_vectorbt']:.3f}x; trades {check['trades_engine']:,} vs {check['trades_vectorbt']:,}; "
          f"final equity rel diff {check['final_equity_rel_diff']:.2e} -> goal {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
