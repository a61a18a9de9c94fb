"""Performance figures of a backtest, and of buy-and-hold over the same bars, from their definitions.

Conventions (stated once, used everywhere):

- Returns are per bar: ``r[j] = equity[j] / equity[j-1] - 1``, with ``equity[-1]`` the initial equity.
  ``equity[j]`` is the account after bar ``j`` valued at the next bar's open (the last bar: at its close).
- Annualisation from the bar length: ``periods_per_year = 365 x 24 x 3600 / bar_seconds`` (BTC trades around
  the clock, so a year is 365 full days, not 252 sessions).
- Sharpe: ``mean(r) / std(r, ddof=1) x sqrt(periods_per_year)``, risk-free rate 0 (0 when r is constant).
- Sortino: ``mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(periods_per_year)``: the downside deviation below a
  0 target over all bars (empyrical's estimator); 0 when there is no return at all, inf with no down bar.
- CAGR: ``(equity_end / equity_start) ^ (1 / years) - 1`` with ``years = bars / periods_per_year`` (the span's
  length in bar time); -1 once the account is wiped out. Short spans give extreme CAGRs: they are what the
  definition says, not an error.
- Max drawdown: the largest fall from a running peak, as a fraction, over the curve including the initial
  equity; its duration (``max_drawdown_days``) runs from that peak to the recovery to it (or to the end of
  the span), measured between bar open times.
- Calmar: CAGR / max drawdown (0 without a drawdown).
- Trades (net of costs, in account currency): ``hit_rate`` is the win rate (share of trades with a positive
  net return), ``profit_factor`` gross wins / gross losses (inf without a losing trade), ``expectancy`` the
  mean net PnL per trade, ``avg_win`` / ``avg_loss`` the mean net PnL of winners / losers (losers negative).
- ``exposure``: share of bars with a position; ``turnover``: notional traded per bar as a fraction of
  equity; ``costs_paid``: spread, slippage and commission paid, in account currency.
- Buy-and-hold (``buy_hold_*``): one unit of equity held from the first bar's open to the last bar's close,
  marked at the same instants as the strategy, without costs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import ConfigError

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto trades around the clock
RETURN_METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "max_drawdown_days", "calmar")
TRADE_METRICS = ("hit_rate", "profit_factor", "expectancy", "avg_win", "avg_loss", "n_trades", "n_stop_loss",
                 "n_take_profit", "n_skipped")
BOOK_METRICS = ("exposure", "turnover", "costs_paid", "n_bars")
METRIC_NAMES = (*RETURN_METRICS, *TRADE_METRICS, *BOOK_METRICS, *(f"buy_hold_{m}" for m in RETURN_METRICS))


def periods_per_year(bar_seconds: float) -> float:
    if bar_seconds <= 0:
        raise ConfigError("timeframe", f"bar length must be positive, got {bar_seconds!r} s")
    return SECONDS_PER_YEAR / bar_seconds


def sharpe(returns: np.ndarray, per_year: float) -> float:
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    return float(np.mean(returns) / std * math.sqrt(per_year)) if std > 0 else 0.0


def sortino(returns: np.ndarray, per_year: float) -> float:
    if len(returns) == 0:
        return 0.0
    mean = float(np.mean(returns))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0.0:
        return 0.0 if mean <= 0.0 else math.inf
    return mean / downside * math.sqrt(per_year)


def cagr(total_return: float, n_bars: int, per_year: float) -> float:
    if n_bars == 0:
        return 0.0
    growth = 1.0 + total_return
    if growth <= 0.0:
        return -1.0
    try:
        return growth ** (per_year / n_bars) - 1.0
    except OverflowError:
        return math.inf


def drawdown(curve: np.ndarray) -> np.ndarray:
    """Fall from the running peak, as a fraction (0 at a new high)."""
    peak = np.maximum.accumulate(curve)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - curve / peak, 0.0)


def max_drawdown(curve: np.ndarray, times: np.ndarray) -> tuple[float, float]:
    """(depth, days from its peak to recovery or the end) of the deepest drawdown of ``curve`` at ``times``
    (datetime64[ns], one per point)."""
    dd = drawdown(curve)
    trough = int(np.argmax(dd))
    depth = float(dd[trough])
    if depth <= 0.0:
        return 0.0, 0.0
    top = float(np.max(curve[: trough + 1]))
    peak_at = int(np.flatnonzero(curve[: trough + 1] >= top)[-1])
    recovered = np.flatnonzero(curve[trough:] >= top)
    end_at = trough + int(recovered[0]) if recovered.size else len(curve) - 1
    days = (times[end_at] - times[peak_at]) / np.timedelta64(1, "D")
    return depth, float(days)


def return_metrics(returns: np.ndarray, times: np.ndarray, per_year: float) -> dict[str, float]:
    """The return figures of one series of per-bar returns; ``times`` has one point more than ``returns``
    (the start, then each bar's end)."""
    curve = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    total = float(curve[-1] - 1.0)
    growth = cagr(total, len(returns), per_year)
    depth, days = max_drawdown(curve, times)
    return {"total_return": total, "cagr": growth, "sharpe": sharpe(returns, per_year),
            "sortino": sortino(returns, per_year), "max_drawdown": depth, "max_drawdown_days": days,
            "calmar": growth / depth if depth > 0 else 0.0}


def trade_metrics(net_pnl: np.ndarray, returns: np.ndarray, reasons: np.ndarray) -> dict[str, float]:
    """Figures of the closed trades: net PnL in account currency, net return, exit reason names."""
    n = len(net_pnl)
    wins, losses = net_pnl[net_pnl > 0], net_pnl[net_pnl < 0]
    gross_loss = -float(losses.sum())
    factor = float(wins.sum()) / gross_loss if gross_loss > 0 else (math.inf if wins.size else 0.0)
    return {
        "hit_rate": float((returns > 0).mean()) if n else 0.0,
        "profit_factor": factor,
        "expectancy": float(net_pnl.mean()) if n else 0.0,
        "avg_win": float(wins.mean()) if wins.size else 0.0,
        "avg_loss": float(losses.mean()) if losses.size else 0.0,
        "n_trades": float(n),
        "n_stop_loss": float(np.count_nonzero(reasons == "stop_loss")),
        "n_take_profit": float(np.count_nonzero(reasons == "take_profit")),
    }


def curve_times(index: pd.DatetimeIndex, bar_seconds: float) -> np.ndarray:
    """When each equity point is valued: the first bar's open, then each bar's next open (the last bar: its
    close)."""
    stamps = index.as_unit("ns").asi8  # UTC epoch nanoseconds, whatever the zone
    end = stamps[-1] + int(bar_seconds * 1e9)
    return np.concatenate([stamps, [end]]).astype("datetime64[ns]")


def summarize(frame: pd.DataFrame, trades: pd.DataFrame, *, initial_equity: float, bar_seconds: float,
              skipped: int = 0) -> dict[str, float]:
    """Every figure of METRIC_NAMES for a backtest's per-bar frame and trades table."""
    import pandas as pd

    per_year = periods_per_year(bar_seconds)
    times = curve_times(pd.DatetimeIndex(frame.index), bar_seconds)
    net = frame["net"].to_numpy()
    out = return_metrics(net, times, per_year)
    out |= trade_metrics(trades["net_pnl"].to_numpy(), trades["return"].to_numpy(),
                         trades["exit_reason"].to_numpy(dtype=object))
    before = np.concatenate([[initial_equity], frame["equity"].to_numpy()[:-1]])
    out |= {"n_skipped": float(skipped), "exposure": float((frame["position"] != 0).mean()),
            "turnover": float(frame["traded"].sum() / len(frame)),
            "costs_paid": float(np.sum(frame["cost"].to_numpy() * before)), "n_bars": float(len(frame))}
    # total_return from the equity itself (the compounded returns agree to rounding)
    out["total_return"] = float(frame["equity"].iloc[-1] / initial_equity - 1.0)
    hold = return_metrics(frame["price_return"].to_numpy(), times, per_year)
    out |= {f"buy_hold_{k}": v for k, v in hold.items()}
    return {k: out[k] for k in METRIC_NAMES}


def monthly_returns(equity: pd.Series, initial_equity: float) -> pd.DataFrame:
    """Compounded return of each calendar month (rows: years, columns: 1..12; NaN where no bar)."""
    import pandas as pd

    if equity.empty:
        return pd.DataFrame(columns=range(1, 13), dtype="float64")
    last = equity.groupby([equity.index.year, equity.index.month]).last()
    start = np.concatenate([[initial_equity], last.to_numpy()[:-1]])
    rets = pd.Series(last.to_numpy() / start - 1.0, index=last.index)
    table = rets.unstack(level=1).reindex(columns=range(1, 13))
    table.index.name, table.columns.name = "year", "month"
    return table
