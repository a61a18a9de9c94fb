"""Positions held in lots: costs worked out by hand, fixed-size shorts, sizing rounded to the volume step."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.trading.backtest import BacktestSettings
from engine.trading.fills import size_lots, step_decimals
from engine.trading.risk_rules import RiskLimits
from engine.trading.sizing import SymbolSpec, position_size
from tests.trading.backtest_fixtures import FREE, bt, ohlc


def test_costs_of_one_round_trip_by_hand() -> None:
    # 2 lots long from bar 1's open (100) to bar 2's open (110). Each fill pays half the spread (1 bp),
    # slippage (0.5 bp) and commission (1 bp) of its notional: 200 at entry, 220 at exit.
    res = bt([1, 0, 0, 0], ohlc([100.0, 100.0, 110.0, 110.0]), sizing="lots", fixed_lots=2.0)
    rate = 2.5e-4
    (trade,) = res.trades.itertuples(index=False)
    assert (trade.side, trade.size, trade.entry_price, trade.exit_price) == (1, 2.0, 100.0, 110.0)
    assert trade.pnl == pytest.approx(20.0)
    assert trade.costs == pytest.approx(rate * 200 + rate * 220)  # 0.05 + 0.055
    assert trade.net_pnl == pytest.approx(20.0 - 0.105)
    assert (trade.exit_reason, trade.bars) == ("signal", 1)
    assert res.equity.iloc[-1] == pytest.approx(10_000.0 + 20.0 - 0.105, rel=1e-15)
    assert res.metrics["costs_paid"] == pytest.approx(0.105)
    # per bar: the entry cost on bar 1, the exit cost on bar 2, as fractions of the equity before each bar
    assert res.frame["cost"].to_numpy() * np.r_[10_000.0, res.equity.to_numpy()[:-1]] == pytest.approx(
        [0.0, 0.05, 0.055, 0.0])
    assert res.metrics["expectancy"] == pytest.approx(20.0 - 0.105)


def test_a_flip_pays_the_exit_and_the_entry_and_the_last_close_liquidates() -> None:
    # long 1 lot at 100, reversed to short at 120 (exit 120 + entry 120 on one bar), held to the end: the
    # last bar's close (90) liquidates the short and pays for it.
    res = bt([1, -1, -1, -1], ohlc([100.0, 100.0, 120.0, 100.0], closes=[100.0, 100.0, 120.0, 90.0]),
             sizing="lots", fixed_lots=1.0, spread_bps=0.0, slippage_bps=0.0, commission_bps=10.0)
    long, short = res.trades.itertuples(index=False)
    assert (long.side, long.entry_price, long.exit_price, long.exit_reason) == (1, 100.0, 120.0, "signal")
    assert (short.side, short.entry_price, short.exit_price, short.exit_reason) == (-1, 120.0, 90.0, "end")
    assert short.exit_time == res.frame.index[-1] + np.timedelta64(60, "s")  # at the last bar's close
    assert res.frame["traded"].to_numpy() * np.r_[10_000.0, res.equity.to_numpy()[:-1]] == pytest.approx(
        [0.0, 100.0, 240.0, 0.0 + 90.0])
    assert res.equity.iloc[-1] == pytest.approx(10_000.0 + 20.0 + 30.0 - 1e-3 * (100 + 240 + 90))


def test_a_short_is_held_at_a_fixed_size() -> None:
    # Half the equity short at 100 = 50 lots, held while the price goes 120, 90, 80: the PnL is 50 x (100 - 80)
    # whatever the path. Re-sizing a fraction of equity every bar (rebalance) earns something else.
    bars = ohlc([100.0, 100.0, 120.0, 90.0, 80.0, 80.0])
    signals = [-1, -1, -1, -1, 0, 0]
    held = bt(signals, bars, sizing="equity", equity_fraction=0.5, **FREE)
    assert held.frame["position"].tolist() == [0.0, -50.0, -50.0, -50.0, -50.0, 0.0]
    (trade,) = held.trades.itertuples(index=False)
    assert (trade.size, trade.entry_price, trade.exit_price) == (50.0, 100.0, 80.0)
    assert held.equity.iloc[-1] == pytest.approx(10_000.0 + 50 * 20.0)
    rebalanced = bt([s * 0.5 for s in signals], bars, sizing="rebalance", **FREE)
    assert rebalanced.equity.iloc[-1] != pytest.approx(held.equity.iloc[-1], rel=1e-3)


def test_lots_are_rounded_down_to_the_volume_step_and_capped() -> None:
    bars = ohlc([30_000.0] * 4)
    # 10,000 of equity at 30,000 a lot: 0.3333 lots -> 0.33 at a 0.01 step, 0.3 at a 0.1 step
    assert bt([1, 0, 0, 0], bars, sizing="equity").trades["size"].tolist() == [0.33]
    assert bt([1, 0, 0, 0], bars, sizing="equity", volume_step=0.1).trades["size"].tolist() == [0.3]
    # the risk group's lot cap and the symbol's volume_max both cap
    assert bt([1, 0, 0, 0], bars, sizing="equity", limits=RiskLimits(max_position_size=0.2)).trades["size"].tolist() \
        == [0.2]
    assert bt([1, 0, 0, 0], bars, sizing="lots", fixed_lots=5.0, volume_max=0.25).trades["size"].tolist() == [0.25]
    # below the minimum lot nothing is traded, and the refusal is counted
    small = bt([1, 0, 0, 0], bars, sizing="equity", volume_min=0.5)
    assert small.trades.empty and small.metrics["n_skipped"] == 1.0 and small.equity.iloc[-1] == 10_000.0


def test_risk_sizing_loses_the_risk_budget_at_the_stop() -> None:
    # entry 100, stop 500 points = 5.00 below; 1% of 10,000 = 100 at risk -> 20 lots; the stop is hit.
    bars = ohlc([100.0, 100.0, 100.0], lows=[99.5, 94.0, 99.5])
    res = bt([1, 1, 1], bars, sizing="risk", stop_loss=500.0, limits=RiskLimits(risk_per_trade=0.01,
                                                                                 max_position_size=1e6), **FREE)
    (trade,) = res.trades.itertuples(index=False)
    assert trade.size == 20.0 and trade.exit_price == 95.0 and trade.exit_reason == "stop_loss"
    assert trade.net_pnl == pytest.approx(-100.0)


def test_compiled_sizing_is_the_risk_managers_sizing() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        step = float(rng.choice([0.01, 0.1, 0.001, 1.0, 0.05]))
        spec = SymbolSpec(volume_min=step * int(rng.integers(1, 5)), volume_max=float(rng.choice([10.0, 100.0])),
                          volume_step=step, tick_size=0.01, tick_value=float(rng.choice([0.01, 0.1, 1.0])), point=0.01)
        equity = float(rng.uniform(100, 200_000))
        risk = float(rng.uniform(0.001, 0.05))
        entry = float(rng.uniform(1_000, 100_000))
        stop = entry - float(rng.uniform(-1, 1)) * entry * 0.02
        cap = float(rng.choice([0.5, 2.0, 1e9]))
        want = position_size(equity, risk, entry, stop, spec, cap=cap).volume
        sizing = np.array([1.0, 0.1, risk, spec.volume_min, min(spec.volume_max, cap), step, spec.point,
                           spec.point_value, spec.tick_value / spec.tick_size])
        got = size_lots(3, equity, 1.0, entry, stop, sizing, step_decimals(step))
        assert got == want, (equity, risk, entry, stop, spec, cap)


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match=r"backtest\.stop_loss"):
        BacktestSettings(sizing="risk")
    with pytest.raises(ConfigError, match=r"backtest\.sizing"):
        BacktestSettings(sizing="rebalance", stop_loss=100.0)
    with pytest.raises(ConfigError, match=r"backtest\.volume_max"):
        BacktestSettings(volume_min=1.0, volume_max=0.5)
    with pytest.raises(ConfigError, match=r"backtest\.stop_unit"):
        BacktestSettings(stop_unit="percent")
