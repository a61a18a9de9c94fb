"""The live loop over real parts: the simulator on 127.0.0.1 replaying the bundled real bars, a small XGBoost
model trained on earlier bars of the same sample, the real RiskManager and a Parquet audit trail."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.data.dataset import DatasetBuilder, DatasetSettings
from engine.data.features import FeatureEngineering
from engine.data.incremental import IncrementalFeatures, warmup_bars
from engine.data.indicator_state import Atr
from engine.data.labels import LabelSpec
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.storage.audit import ParquetAuditStore
from engine.tasks.live import PipelinePredictor
from engine.timeframes import parse
from engine.trading.audit import AuditLog
from engine.trading.backtest import BacktestSettings
from engine.trading.live import LiveLoop, LiveSettings
from engine.trading.live_feed import BrokerBarFeed, ReplayClock
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import MemoryRiskStore

M1 = parse("M1")
TRAIN_END = "2024-02-20"  # the model never sees the bars it trades (replays start later)
REPLAY_START = "2024-02-22T00:00:00Z"
# The test strategy: fixed lots, stops in points (the simulator's BTCUSD: a point is 0.01 USD).
DECISION = BacktestSettings(long_threshold=0.52, short_threshold=0.52, sizing="lots", fixed_lots=0.1,
                            stop_loss=5000, take_profit=10000)
LOOSE = RiskLimits(max_drawdown=1.0, max_daily_loss=1.0, max_position_size=1.0)


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    return read_minute_bars()


@pytest.fixture(scope="session")
def features() -> FeatureEngineering:
    return FeatureEngineering(timeframes=["1min", "5min"], sma=[], bbands=[], vwap=[30], vwap_day=False)


@pytest.fixture(scope="session")
def model(sample_bars: pd.DataFrame, features: FeatureEngineering) -> Any:
    """A small XGBoost pipeline on February bars before TRAIN_END (a few seconds)."""
    from engine.models.pipeline import MLPipeline

    builder = DatasetBuilder(timeframe=M1, features=features, labels=LabelSpec(horizon=5), settings=DatasetSettings())
    data = builder.build(sample_bars.loc["2024-02-01":TRAIN_END])
    train, val, _ = data.splits
    pipe = MLPipeline("xgboost", {"n_estimators": 40, "max_depth": 3}, seed=1)
    pipe.fit(data.take(train), data.y[train], validation=(data.take(val), data.y[val]),
             feature_names=data.feature_names)
    pipe.metadata["recipe"] = builder.recipe()
    return pipe


@dataclass
class Rig:
    """One live loop and everything around it; ``run()`` trades until max_bars or the stop event."""

    simulator: Simulator
    client: MT5RestClient
    loop: LiveLoop
    store: ParquetAuditStore
    risk: RiskManager
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> Any:
        return self.loop.run(self.stop)

    def records(self, kind: str | None = None) -> list[Any]:
        return [r for r in self.store.read(self.loop.settings.session) if kind is None or r.kind == kind]


@pytest.fixture
def make_rig(sample_bars: pd.DataFrame, features: FeatureEngineering, model: Any,
             tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def _make(*, start: str = REPLAY_START, max_bars: int | None = 120, decision: BacktestSettings = DECISION,
              limits: RiskLimits = LOOSE, session: str = "test", sim: SimSettings | None = None,
              simulator: Simulator | None = None, risk_store: Any = None, audit_root: Path | None = None,
              client_options: dict[str, Any] | None = None, audit_store: Any = None, **settings: Any) -> Rig:
        if simulator is None:
            simulator = Simulator(sample_bars, settings=sim or SimSettings(start=start, speed=0.0)).start()
        client = MT5RestClient(simulator.url, DEV_TOKEN, server_time_offset_hours=2.0,
                               **{"read_timeout": 10.0, **(client_options or {})})
        store = audit_store or ParquetAuditStore(audit_root or tmp_path / "audit", fsync=False)
        risk = RiskManager.from_limits(client, limits, store=risk_store or MemoryRiskStore(), key=session)
        warmup = settings.pop("warmup", warmup_bars(features))
        loop = LiveLoop(settings=LiveSettings(session=session, warmup=warmup, max_bars=max_bars, **settings),
                        decision=decision, features=lambda history: IncrementalFeatures(features, history),
                        model=PipelinePredictor(model), feed=BrokerBarFeed(client, "BTCUSD", M1),
                        clock=ReplayClock(simulator, M1), broker=client, risk=risk, audit=AuditLog(store, session),
                        atr=Atr(decision.atr_period))
        rig = Rig(simulator, client, loop, store, risk)
        made.append(rig)
        return rig

    yield _make
    for rig in made:
        rig.client.close()
        rig.simulator.stop(timeout=5)
