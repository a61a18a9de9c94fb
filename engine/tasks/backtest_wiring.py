"""What task=train's evaluation and task=backtest share to trade a span of a dataset; not a task itself.

Both build the backtest from the same config groups (``backtest`` for positions, stops and costs; ``risk``
for the risk per trade and the lot cap) and trade the same bars the same way, which is why the test-span
figures of ``task=train`` and ``task=backtest task.span=test`` are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from engine.config.build import build
from engine.data.dataset import Dataset
from engine.trading.backtest import BacktestResult, BacktestSettings, run_backtest
from engine.trading.risk_rules import RiskLimits
from engine.trading.signals import class_probabilities, signals_from_proba


@dataclass(frozen=True)
class SpanBacktest:
    """The configured backtest, applied to spans of samples of a dataset."""

    settings: BacktestSettings
    limits: RiskLimits

    def run(self, proba: np.ndarray, data: Dataset, span: slice) -> BacktestResult:
        """Trade the signals of class probabilities ``proba`` (one row per sample of ``span``): each is
        decided at its sample's bar close and filled at the next sample bar's open."""
        p_up, p_down = class_probabilities(np.asarray(proba, dtype="float64"))
        index = data.index[span]
        signals = pd.Series(signals_from_proba(p_up, p_down, self.settings), index=index)
        return self.run_signals(signals, data)

    def run_signals(self, signals: pd.Series, data: Dataset) -> BacktestResult:
        columns = ["open", "high", "low", "close"] if self.settings.has_stops else ["open", "close"]
        bars = data.bars.loc[signals.index, columns]
        atr = atr_at(data, self.settings.atr_period, signals.index) if self.settings.uses_atr else None
        return run_backtest(signals, bars, self.settings, bar_seconds=data.bar_seconds, limits=self.limits,
                            atr=atr)


def trade_span(backtest: SpanBacktest | BacktestSettings, proba: np.ndarray, data: Dataset,
               span: slice) -> BacktestResult:
    """:meth:`SpanBacktest.run`; plain BacktestSettings trade with the default risk limits."""
    tester = backtest if isinstance(backtest, SpanBacktest) else SpanBacktest(backtest, RiskLimits())
    return tester.run(proba, data, span)


def atr_at(data: Dataset, period: int, index: pd.Index) -> pd.Series:
    """Wilder ATR of the dataset's bars, as known at the close of each bar of ``index``."""
    from engine.data.indicators import atr

    bars = data.bars
    values = atr(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), period)
    return pd.Series(values, index=bars.index).loc[index]


def backtest_settings(cfg: DictConfig) -> BacktestSettings:
    return build(cfg.backtest, BacktestSettings, key="backtest") if cfg.get("backtest") is not None \
        else BacktestSettings()


def risk_limits(cfg: DictConfig) -> RiskLimits:
    return build(cfg.risk, RiskLimits, key="risk") if cfg.get("risk") is not None else RiskLimits()


def span_backtest(cfg: DictConfig) -> SpanBacktest:
    """The backtest this config describes; a bad setting fails here, before any data is read."""
    return SpanBacktest(backtest_settings(cfg), risk_limits(cfg))


def trainer_settings(cfg: DictConfig, smoke_max_epochs: int) -> Any:
    """The trainer group as TrainerSettings, epochs capped in smoke mode (as task=train does)."""
    from engine.models.settings import TrainerSettings

    t = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    if cfg.smoke and "max_epochs" in t:
        t["max_epochs"] = min(int(t["max_epochs"]), int(smoke_max_epochs))
    return TrainerSettings(**t)


def device(cfg: DictConfig) -> str:
    accel = str(cfg.trainer.accelerator) if cfg.get("trainer") is not None else "cpu"
    return {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}.get(accel, "auto")
