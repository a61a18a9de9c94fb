"""The backtest's figures against an independent implementation (empyrical-reloaded) and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.trading.performance import (
    METRIC_NAMES,
    max_drawdown,
    monthly_returns,
    periods_per_year,
    trade_metrics,
)
from tests.trading.backtest_fixtures import bt, ohlc

empyrical = pytest.importorskip("empyrical")


def _random_backtest(sizing: str, bar: str = "5min", n: int = 3000):
    rng = np.random.default_rng(17)
    opens = 40_000 * np.exp(rng.normal(0, 0.002, n).cumsum())
    bars = ohlc(list(opens), highs=list(opens * 1.002), lows=list(opens * 0.998),
                closes=list(opens * np.exp(rng.normal(0, 0.001, n))), freq=bar)
    signals = np.sign(rng.normal(0.0, 1.0, n)) * (rng.random(n) < 0.7)
    extra = {"stop_loss": 4000.0, "take_profit": 8000.0} if sizing != "rebalance" else {}
    res = bt(list(signals), bars, sizing=sizing, **extra)
    return res, pd.Timedelta(bar).total_seconds()


@pytest.mark.parametrize("sizing", ["equity", "risk", "rebalance"])
def test_return_figures_agree_with_empyrical(sizing: str) -> None:
    res, seconds = _random_backtest(sizing)
    per_year = periods_per_year(seconds)
    assert per_year == 365 * 24 * 12  # 5-minute bars around the clock
    m = res.metrics
    for prefix, returns in (("", res.frame["net"].to_numpy()), ("buy_hold_", res.frame["price_return"].to_numpy())):
        assert m[f"{prefix}sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=per_year),
                                                     rel=1e-9)
        assert m[f"{prefix}sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=per_year),
                                                      rel=1e-9)
        assert m[f"{prefix}cagr"] == pytest.approx(empyrical.cagr(returns, annualization=per_year), rel=1e-9)
        assert m[f"{prefix}max_drawdown"] == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
        assert m[f"{prefix}calmar"] == pytest.approx(empyrical.calmar_ratio(returns, annualization=per_year),
                                                     rel=1e-9)
        assert m[f"{prefix}total_return"] == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)
    assert set(m) == set(METRIC_NAMES)


def test_trade_figures_by_hand() -> None:
    pnl = np.array([30.0, -10.0, 50.0, -20.0, 0.0])
    m = trade_metrics(pnl, pnl / 1000, np.array(["signal", "stop_loss", "take_profit", "stop_loss", "end"]))
    assert m["hit_rate"] == pytest.approx(2 / 5)
    assert m["profit_factor"] == pytest.approx(80 / 30)
    assert m["expectancy"] == pytest.approx(50 / 5)
    assert (m["avg_win"], m["avg_loss"]) == (pytest.approx(40.0), pytest.approx(-15.0))
    assert (m["n_trades"], m["n_stop_loss"], m["n_take_profit"]) == (5.0, 2.0, 1.0)
    assert trade_metrics(np.array([5.0]), np.array([0.01]), np.array(["signal"]))["profit_factor"] == math.inf
    assert trade_metrics(np.array([]), np.array([]), np.array([]))["profit_factor"] == 0.0


def test_drawdown_duration_runs_from_the_peak_to_the_recovery() -> None:
    times = pd.date_range("2024-01-01", periods=7, freq="1D").to_numpy()
    # peak 120 on day 1, trough 90 on day 3 (-25%), back to 120 on day 5
    depth, days = max_drawdown(np.array([100.0, 120.0, 100.0, 90.0, 110.0, 120.0, 125.0]), times)
    assert (depth, days) == (pytest.approx(0.25), 4.0)
    # never recovered: to the end of the span
    depth, days = max_drawdown(np.array([100.0, 120.0, 100.0, 90.0, 110.0, 100.0, 95.0]), times)
    assert (depth, days) == (pytest.approx(0.25), 5.0)
    assert max_drawdown(np.array([1.0, 2.0, 3.0]), times[:3]) == (0.0, 0.0)


def test_monthly_returns_compound_each_calendar_month() -> None:
    idx = pd.to_datetime(["2024-01-15", "2024-01-31", "2024-02-10", "2024-04-02"], utc=True)
    table = monthly_returns(pd.Series([105.0, 110.0, 99.0, 108.9], index=idx), initial_equity=100.0)
    assert table.loc[2024, 1] == pytest.approx(0.10)
    assert table.loc[2024, 2] == pytest.approx(-0.10)
    assert np.isnan(table.loc[2024, 3])
    assert table.loc[2024, 4] == pytest.approx(0.10)


def test_exposure_turnover_and_costs_of_a_known_book() -> None:
    res = bt([1, 0, 0, 0], ohlc([100.0, 100.0, 110.0, 110.0]), sizing="lots", fixed_lots=2.0)
    m = res.metrics
    assert m["exposure"] == pytest.approx(1 / 4)
    assert m["turnover"] == pytest.approx((200 / 10_000 + 220 / (10_000 + 20 - 0.05)) / 4)
    assert m["costs_paid"] == pytest.approx(0.105)
    assert m["n_bars"] == 4.0
