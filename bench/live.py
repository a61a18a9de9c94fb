"""Live loop latency: a closed bar in hand -> the order request, for xgboost and lstm, without the network.

    .venv/bin/python bench/live.py [--bars 3000] [--reference-bars 600] [--threads 1]

Each model is fitted once on the bundled sample (January-February; the xgb_1m and lstm_5m experiments'
features and sizes), then the live loop trades March bars against the simulator's market called in process
(no HTTP: what is left is the engine's own work plus the simulated broker's bookkeeping) with an in-memory
audit trail. Per bar that ends in an order, the time from the bar handed to the loop to the order request
leaving for the broker is recorded; p50/p99 are over those bars (an aggressive 0.5 threshold makes most
bars trade). The reference is the same loop recomputing the features over the warm-up window on every bar
(``FeatureEngineering.transform`` of the last ``warmup`` bars), the naive way to stay causal. Also shown: the
feature step alone both ways, and the incremental loop with the durable Parquet audit trail (fsync of the
write-ahead record before each order).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.data.dataset import DatasetBuilder, DatasetSettings, complete_bars
from engine.data.features import FeatureEngineering
from engine.data.incremental import IncrementalFeatures, warmup_bars
from engine.data.indicator_state import Atr
from engine.data.labels import LabelSpec
from engine.models.pipeline import MLPipeline
from engine.models.settings import TrainerSettings
from engine.mt5 import contract
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.market import SimMarket
from engine.mt5.sim.settings import SimSettings
from engine.storage.audit import ParquetAuditStore
from engine.tasks.live import PipelinePredictor
from engine.timeframes import Timeframe, parse
from engine.trading.audit import AuditLog, MemoryAuditStore
from engine.trading.backtest import BacktestSettings
from engine.trading.live import LiveLoop, LiveSettings
from engine.trading.live_feed import BrokerBarFeed, ReplayClock
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import RiskLimits

OFFSET = pd.Timedelta(hours=2)
START = "2024-03-01T00:00:00Z"
WARM_ORDERS = 10


class InProcessBroker:
    """MT5RestClient's surface over a SimMarket in this process: the broker without the network."""

    order_retries = 2
    max_bars = 10_000

    def __init__(self, market: SimMarket) -> None:
        self.market = market

    def bars(self, symbol: str, timeframe: str, count: int, start_pos: int = 0) -> pd.DataFrame:
        rows = self.market.rates_from_pos(symbol, contract.timeframe(timeframe), start_pos, count)
        frame = pd.DataFrame(rows)
        frame.index = pd.to_datetime(frame.pop("time"), utc=True) - OFFSET
        return frame

    def latest_tick(self, symbol: str) -> dict[str, Any]:
        tick = self.market.symbol_info_tick(symbol)
        return {"time": pd.Timestamp(tick["time_msc"], unit="ms", tz="UTC") - OFFSET, "bid": tick["bid"],
                "ask": tick["ask"]}

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        return self.market.symbol_info(symbol)

    def account_info(self) -> dict[str, Any]:
        return self.market.account_info()

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self.market.positions(symbol)

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self.market.orders(symbol)

    def history_deals(self, start: Any = None, end: Any = None, symbol: str = "BTCUSD") -> list[dict[str, Any]]:
        return self.market.history_deals(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1))

    def post_order(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self.market.order_send(contract.parse_order(dict(body)))

    def post_close(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self.market.close_position(int(body["ticket"]), body.get("volume"), int(body["deviation"]),
                                          int(body["magic"]), str(body["comment"]))

    def find_order(self, comment: str, *, magic: int | None = None, position: int | None = None) -> None:
        return None

    def order_state(self, ticket: int) -> None:
        return None

    def backoff(self, attempt: int, retry_after: float | None = None) -> None:
        return None


class RecomputedFeatures:
    """The reference: the batch features of the last ``window`` bars, recomputed on every bar."""

    def __init__(self, features: FeatureEngineering, history: pd.DataFrame, window: int,
                 seq_len: int | None) -> None:
        self.features, self.window, self.seq_len = features, window, seq_len
        self.bars = history.iloc[-window:]
        self.names = list(features.transform(self.bars.iloc[-4:]).columns)
        self.frame = features.transform(self.bars)

    def update(self, time: pd.Timestamp, bar: Mapping[str, float]) -> np.ndarray:
        row = pd.DataFrame([bar], index=pd.DatetimeIndex([time], name="timestamp"))[list(self.bars.columns)]
        self.bars = pd.concat([self.bars.iloc[1:], row])
        self.frame = self.features.transform(self.bars)
        return self.frame.to_numpy()[-1]

    def model_input(self) -> np.ndarray | None:
        if self.seq_len is None:
            return self.frame.to_numpy()[-1:]
        return self.frame.to_numpy(dtype="float32")[None, -self.seq_len:]


def fitted(kind: str, bars: pd.DataFrame) -> tuple[MLPipeline, FeatureEngineering, Timeframe]:
    if kind == "xgboost":
        features, tf, seq = FeatureEngineering(timeframes=["1min", "5min", "15min"]), parse("M1"), None
        pipe = MLPipeline("xgboost", {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05}, seed=1)
    else:
        features, tf, seq = FeatureEngineering(timeframes=["5min", "15min", "1h"]), parse("M5"), 32
        pipe = MLPipeline("lstm", {"hidden_dim": 32, "num_layers": 1, "dropout": 0.1}, seed=1, device="cpu",
                          trainer=TrainerSettings(max_epochs=1, batch_size=256, accelerator="cpu",
                                                  enable_progress_bar=False))
    base = complete_bars(bars, parse("M1"), tf) if tf.seconds > 60 else bars
    data = DatasetBuilder(timeframe=tf, features=features, labels=LabelSpec(horizon=3),
                          settings=DatasetSettings(seq_len=seq)).build(base.loc[:"2024-02-29"])
    train, val, _ = data.splits
    pipe.fit(data.take(train), data.y[train], validation=(data.take(val), data.y[val]),
             feature_names=data.feature_names)
    return pipe, features, tf


def run_loop(pipe: MLPipeline, features: FeatureEngineering, tf: Timeframe, bars: pd.DataFrame, n: int, *,
             recompute: bool, audit: Any, timer: Any = time.perf_counter) -> tuple[np.ndarray, np.ndarray]:
    market = SimMarket(bars, SimSettings(start=START, speed=0.0))
    broker = InProcessBroker(market)
    warmup = warmup_bars(features, pipe.seq_len_)
    decision = BacktestSettings(long_threshold=0.5, short_threshold=0.5, sizing="lots", fixed_lots=0.1,
                                stop_loss=20_000, take_profit=40_000)

    def make(history: pd.DataFrame) -> Any:
        if recompute:
            return RecomputedFeatures(features, history, warmup, pipe.seq_len_)
        return IncrementalFeatures(features, history, seq_len=pipe.seq_len_)

    steps: list[float] = []

    def timed_make(history: pd.DataFrame) -> Any:
        state = make(history)
        update = state.update

        def timed(time_: pd.Timestamp, bar: Mapping[str, float]) -> np.ndarray:
            t0 = timer()
            row = update(time_, bar)
            steps.append(timer() - t0)
            return row

        state.update = timed  # the feature step alone, as the loop calls it
        return state

    risk = RiskManager.from_limits(broker, RiskLimits(max_drawdown=1.0, max_daily_loss=1.0, max_position_size=1.0))
    loop = LiveLoop(settings=LiveSettings(bar_seconds=tf.seconds, session="bench", warmup=warmup, max_bars=n,
                                          freeze_gc=True),
                    decision=decision, features=timed_make, model=PipelinePredictor(pipe),
                    feed=BrokerBarFeed(broker, "BTCUSD", tf), clock=ReplayClock(market, tf), broker=broker,
                    risk=risk, audit=AuditLog(audit, "bench"), atr=Atr(14), timer=timer)
    try:
        stats = loop.run(threading.Event())
    finally:
        gc.unfreeze()  # as task=live does, for the run; the next run starts from a clean slate
    skip = WARM_ORDERS  # the first calls load compiled kernels and fill caches: steady state is what is timed
    return np.asarray(stats.latencies[skip:]) * 1e3, np.asarray(steps[skip:]) * 1e3


def pct(values: np.ndarray) -> str:
    return f"{np.percentile(values, 50):7.3f} / {np.percentile(values, 99):7.3f} ms" if len(values) else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=3000, help="bars traded per run (incremental)")
    ap.add_argument("--reference-bars", type=int, default=600, help="bars traded by the recomputing reference")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("engine").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    bars = read_minute_bars()
    print(f"torch threads {torch.get_num_threads()}; closed bar -> order request, p50 / p99 (no network)")
    for kind in ("xgboost", "lstm"):
        pipe, features, tf = fitted(kind, bars)
        n = args.bars if tf.seconds == 60 else args.bars // 2
        warm = warmup_bars(features, pipe.seq_len_)
        print(f"{kind} {tf.mt5} ({len(pipe.feature_names_)} features, warm-up {warm} bars)")
        # wall clock (what an order waits) and this thread's CPU time (the engine's own work, without the
        # time the machine's other processes held the CPU)
        for clock, timer in (("wall", time.perf_counter), ("cpu", time.thread_time)):
            inc, inc_steps = run_loop(pipe, features, tf, bars, n, recompute=False, audit=MemoryAuditStore(),
                                      timer=timer)
            ref, ref_steps = run_loop(pipe, features, tf, bars, args.reference_bars, recompute=True,
                                      audit=MemoryAuditStore(), timer=timer)
            print(f"  {clock:4s} incremental        bar -> order {pct(inc)}  (n={len(inc)})   feature step "
                  f"{pct(inc_steps)}")
            print(f"  {clock:4s} recompute warm-up  bar -> order {pct(ref)}  (n={len(ref)})   feature step "
                  f"{pct(ref_steps)}")
            print(f"  {clock:4s} ratio recompute / incremental: bar -> order p50 "
                  f"x{np.percentile(ref, 50) / np.percentile(inc, 50):.1f} p99 "
                  f"x{np.percentile(ref, 99) / np.percentile(inc, 99):.1f}; feature step p50 "
                  f"x{np.percentile(ref_steps, 50) / np.percentile(inc_steps, 50):.0f}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            durable, _ = run_loop(pipe, features, tf, bars, min(n, 1000), recompute=False,
                                  audit=ParquetAuditStore(Path(tmp), fsync=True))
        print(f"  wall incremental + Parquet audit with fsync: bar -> order {pct(durable)}  (n={len(durable)})",
              flush=True)


if __name__ == "__main__":
    main()
