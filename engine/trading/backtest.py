"""A pure next-bar backtest: probabilities -> signals -> positions filled at the NEXT bar's open -> equity.

Timing (the one rule that keeps a backtest honest): a signal computed from bar ``t`` (its features use
data up to bar t's close) can only be traded at bar ``t+1``'s open. So the position held over bar ``j``
is the signal of bar ``j-1``; the first bar is always flat. A position entered at ``open[j]`` earns
``open[j+1] / open[j] - 1`` (the last bar is marked to its own close, where any position is closed).

Costs, in basis points of traded notional (positions are fractions of equity, so a flip long -> short
trades 2 units): half the quoted spread (crossing to the far side of the book), slippage and commission,
each charged per unit traded. The final liquidation at the last close is charged too, so every trade
pays its way in and out.

Returns compound: ``equity[j] = equity[j-1] * (1 + position[j] * price_return[j] - cost[j])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded, check

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto trades around the clock
METRIC_NAMES = ("total_return", "sharpe", "max_drawdown", "hit_rate", "turnover", "n_trades", "exposure", "n_bars")


@dataclass(frozen=True)
class BacktestSettings:
    """Signal thresholds and trading costs. Thresholds apply to class probabilities: long when
    P(up) > ``long_threshold``, short when P(down) > ``short_threshold`` (and ``allow_short``)."""

    long_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    short_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    allow_short: bool = True
    spread_bps: float = bounded(2.0, ge=0.0)  # quoted spread; half of it is paid per unit traded
    commission_bps: float = bounded(1.0, ge=0.0)
    slippage_bps: float = bounded(0.5, ge=0.0)
    initial_equity: float = bounded(10_000.0, gt=0.0)

    def __post_init__(self) -> None:
        check(self, "backtest")  # the bounds above; the config layer applies the same ones before any work

    @property
    def cost_rate(self) -> float:
        """Fraction of notional paid per unit of position traded."""
        return (self.spread_bps / 2 + self.slippage_bps + self.commission_bps) / 1e4


@dataclass(frozen=True)
class BacktestResult:
    frame: pd.DataFrame  # per bar: signal, position, price_return, gross, cost, net, equity
    metrics: dict[str, float]

    @property
    def equity(self) -> pd.Series:
        return self.frame["equity"]


def signals_from_proba(p_up: np.ndarray, p_down: np.ndarray, settings: BacktestSettings) -> np.ndarray:
    """+1 / -1 / 0 per row. Each row is decided from its own probabilities alone (no look at other rows)."""
    up = np.asarray(p_up, dtype="float64")
    down = np.asarray(p_down, dtype="float64")
    if up.shape != down.shape or up.ndim != 1:
        raise DataQualityError(f"p_up and p_down must be 1-D and equally long; got {up.shape} and {down.shape}")
    long = (up > settings.long_threshold) & (up >= down)
    short = (down > settings.short_threshold) & (down > up) & settings.allow_short
    return np.where(long, 1.0, np.where(short, -1.0, 0.0))


def class_probabilities(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(up), P(down)) from a [n, k] probability matrix whose classes are ordered down .. up
    (binary labels: 0 = not up, 1 = up; three classes: 0 = down, 1 = flat, 2 = up)."""
    p = np.asarray(proba, dtype="float64")
    if p.ndim != 2 or p.shape[1] < 2:
        raise DataQualityError(f"need class probabilities [n, k >= 2]; got shape {p.shape}")
    return p[:, -1], p[:, 0]


def periods_per_year(bar_seconds: float) -> float:
    if bar_seconds <= 0:
        raise ConfigError("timeframe", f"bar length must be positive, got {bar_seconds!r} s")
    return SECONDS_PER_YEAR / bar_seconds


def run_backtest(signals: pd.Series, bars: pd.DataFrame, settings: BacktestSettings, *,
                 bar_seconds: float) -> BacktestResult:
    """Trade ``signals`` (decided at each bar's close, indexed like ``bars``) on ``bars``' next opens."""
    if len(bars) == 0:
        raise DataQualityError("backtest needs at least one bar; the evaluation span is empty")
    missing = [c for c in ("open", "close") if c not in bars.columns]
    if missing:
        raise DataQualityError(f"backtest bars lack column(s) {missing}")
    if not signals.index.equals(bars.index):
        raise DataQualityError("signals and bars must share the same index (one signal per bar, decided at "
                               "that bar's close); align them with signals.reindex(bars.index)")
    sig = signals.to_numpy(dtype="float64", na_value=np.nan)
    sig = np.where(np.isnan(sig), 0.0, sig)  # no decision = flat
    if np.any(np.abs(sig) > 1):
        raise DataQualityError("signals must lie in [-1, 1] (fractions of equity)")
    opens = bars["open"].to_numpy(dtype="float64")
    closes = bars["close"].to_numpy(dtype="float64")
    if not (np.all(np.isfinite(opens)) and np.all(np.isfinite(closes))) or np.any(opens <= 0):
        raise DataQualityError("backtest bars need finite, positive open and close prices; clean them first")

    n = len(bars)
    position = np.concatenate([[0.0], sig[:-1]])  # the fill happens at the next bar's open
    exit_px = np.concatenate([opens[1:], closes[-1:]])
    price_return = exit_px / opens - 1.0
    gross = position * price_return
    traded = np.abs(np.diff(position, prepend=0.0))
    traded[-1] += abs(position[-1])  # liquidate at the last close
    cost = traded * settings.cost_rate
    net = gross - cost
    equity = settings.initial_equity * np.cumprod(1.0 + net)

    frame = pd.DataFrame({"signal": sig, "position": position, "price_return": price_return, "gross": gross,
                          "traded": traded, "cost": cost, "net": net, "equity": equity}, index=bars.index)
    metrics = _metrics(frame, settings, periods_per_year(bar_seconds))
    metrics["n_bars"] = float(n)
    return BacktestResult(frame=frame, metrics=metrics)


def trades(frame: pd.DataFrame, cost_rate: float) -> pd.DataFrame:
    """One row per trade (a run of bars holding a position of the same sign): entry/exit bar, side and
    net return = sum of the bars' position * price_return minus entry and exit costs."""
    pos = frame["position"].to_numpy()
    side = np.sign(pos)
    rows = []
    start = None
    for j in range(len(pos) + 1):
        cur = side[j] if j < len(pos) else 0.0
        prev = side[j - 1] if j > 0 else 0.0
        if start is not None and cur != prev:
            seg = slice(start, j)
            size = abs(pos[start])
            pnl = float(frame["gross"].to_numpy()[seg].sum()) - 2 * size * cost_rate
            rows.append({"entry": frame.index[start], "exit": frame.index[j - 1], "side": prev,
                         "bars": j - start, "net_return": pnl})
            start = None
        if start is None and j < len(pos) and cur != 0:
            start = j
    return pd.DataFrame(rows, columns=["entry", "exit", "side", "bars", "net_return"])


def _metrics(frame: pd.DataFrame, settings: BacktestSettings, per_year: float) -> dict[str, float]:
    net = frame["net"].to_numpy()
    equity = frame["equity"].to_numpy()
    std = float(np.std(net, ddof=1)) if len(net) > 1 else 0.0
    sharpe = float(np.mean(net) / std * math.sqrt(per_year)) if std > 0 else 0.0
    curve = np.concatenate([[settings.initial_equity], equity])
    drawdown = 1.0 - curve / np.maximum.accumulate(curve)
    book = trades(frame, settings.cost_rate)
    n_trades = len(book)
    return {
        "total_return": float(equity[-1] / settings.initial_equity - 1.0),
        "sharpe": sharpe,
        "max_drawdown": float(drawdown.max()),
        "hit_rate": float((book["net_return"] > 0).mean()) if n_trades else 0.0,
        "turnover": float(frame["traded"].sum() / len(frame)),
        "n_trades": float(n_trades),
        "exposure": float((frame["position"] != 0).mean()),
    }
