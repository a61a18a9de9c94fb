"""Stop-loss and take-profit inside bars, gaps, the worse-case rule, ATR distances, no re-entry after a stop.

Every case: 1 lot (1.0 of PnL per 1.0 of price) entered at bar 1's open = 100; stop-loss 500 points
(5.00) and take-profit 1000 points (10.00) unless said otherwise; no costs.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.trading.backtest_fixtures import FREE, bt, ohlc

STOPS = {"sizing": "lots", "fixed_lots": 1.0, "stop_loss": 500.0, "take_profit": 1000.0, **FREE}


def _only_trade(res):
    assert len(res.trades) == 1, res.trades
    return next(res.trades.itertuples(index=False))


@pytest.mark.parametrize(("side", "low", "high", "price", "reason"), [
    (1, 94.0, 101.0, 95.0, "stop_loss"),     # long: the low reaches the stop
    (1, 99.0, 111.0, 110.0, "take_profit"),  # long: the high reaches the target
    (1, 94.0, 111.0, 95.0, "stop_loss"),     # both inside one bar: the worse one is assumed
    (-1, 99.0, 106.0, 105.0, "stop_loss"),   # short: the stop is above
    (-1, 89.0, 101.0, 90.0, "take_profit"),
    (-1, 89.0, 106.0, 105.0, "stop_loss"),   # both: the stop
])
def test_a_level_inside_a_bar_fills_at_the_level(side: int, low: float, high: float, price: float,
                                                  reason: str) -> None:
    bars = ohlc([100.0, 100.0, 100.0, 100.0], highs=[100.5, 100.5, high, 100.5], lows=[99.5, 99.5, low, 99.5])
    res = bt([side, side, side, 0], bars, **STOPS)
    trade = _only_trade(res)
    assert (trade.exit_price, trade.exit_reason, trade.bars) == (price, reason, 2)
    assert trade.exit_time == bars.index[2]  # inside bar 2
    assert trade.net_pnl == pytest.approx(side * (price - 100.0))
    assert res.equity.iloc[-1] == pytest.approx(10_000.0 + side * (price - 100.0))


@pytest.mark.parametrize(("side", "gap_open", "reason"), [
    (1, 90.0, "stop_loss"),     # opens below the long's stop: filled at the open, worse than the stop
    (1, 115.0, "take_profit"),  # opens above the target: filled at the open, better than the target
    (-1, 108.0, "stop_loss"),
    (-1, 85.0, "take_profit"),
])
def test_a_gap_through_a_level_fills_at_the_gap_price(side: int, gap_open: float, reason: str) -> None:
    bars = ohlc([100.0, 100.0, gap_open, gap_open])
    trade = _only_trade(bt([side, side, side, 0], bars, **STOPS))
    assert (trade.exit_price, trade.exit_reason) == (gap_open, reason)
    assert trade.pnl == pytest.approx(side * (gap_open - 100.0))


def test_the_stop_works_in_the_bar_of_entry() -> None:
    bars = ohlc([100.0, 100.0, 100.0], lows=[99.5, 94.0, 99.5])
    trade = _only_trade(bt([1, 0, 0], bars, **STOPS))
    assert (trade.entry_time, trade.exit_time, trade.exit_price, trade.bars) == (bars.index[1], bars.index[1], 95.0, 1)


def test_a_stopped_trade_is_not_reentered_until_the_signal_changes() -> None:
    # stopped on bar 2; the signal stays long on bars 2-3 (no trade), goes flat on bar 4, long again on bar 5:
    # the next entry is at bar 6's open.
    bars = ohlc([100.0] * 8, lows=[99.5, 99.5, 94.0, 99.5, 99.5, 99.5, 99.5, 99.5])
    res = bt([1, 1, 1, 1, 0, 1, 1, 0], bars, **STOPS)
    assert res.trades["entry_time"].tolist() == [bars.index[1], bars.index[6]]
    assert res.trades["exit_reason"].tolist() == ["stop_loss", "end"]
    assert res.frame["position"].tolist() == [0, 1, 1, 0, 0, 0, 1, 1]
    # a reversal after a stop is not blocked: the other side is a new decision
    flipped = bt([1, 1, -1, -1, 0, 0, 0, 0], bars, **STOPS)
    assert flipped.trades["side"].tolist() == [1, -1]
    assert flipped.trades["entry_time"].tolist() == [bars.index[1], bars.index[3]]


def test_atr_stops_use_the_atr_known_at_the_signal_bar() -> None:
    # ATR 4.0 at bar 0 (the signal's bar): a 1.5 x ATR stop sits 6.00 below the entry at 100 -> 94.
    bars = ohlc([100.0] * 4, lows=[99.5, 95.0, 93.0, 99.5])
    atr = np.array([4.0, 1.0, 1.0, 1.0])
    trade = _only_trade(bt([1, 1, 1, 0], bars, atr=atr, **{**STOPS, "stop_loss": 1.5, "take_profit": None,
                                                            "stop_unit": "atr"}))
    assert (trade.exit_price, trade.exit_time) == (94.0, bars.index[2])
    # while the ATR is still warming up (NaN) there is no stop to size from or to protect the trade: the entry
    # is skipped, whatever the sizing, and tried again at the next open while the signal still wants it
    unprotected = bt([1, 0, 0, 0], bars, atr=np.array([np.nan, 1.0, 1.0, 1.0]),
                     **{**STOPS, "stop_loss": 1.5, "take_profit": None, "stop_unit": "atr"})
    assert unprotected.trades.empty and unprotected.metrics["n_skipped"] == 1.0
    risk = {**STOPS, "sizing": "risk", "stop_loss": 1.5, "take_profit": None, "stop_unit": "atr"}
    warming = np.array([np.nan, 1.0, 1.0, 1.0])
    once = bt([1, 0, 0, 0], bars, atr=warming, **risk)
    assert once.trades.empty and once.metrics["n_skipped"] == 1.0
    retried = bt([1, 1, 0, 0], bars, atr=warming, **risk)
    assert retried.trades["entry_time"].tolist() == [bars.index[2]] and retried.metrics["n_skipped"] == 1.0


def test_stop_counts_are_reported() -> None:
    bars = ohlc([100.0] * 7, highs=[100.5, 100.5, 111.0, 100.5, 100.5, 100.5, 100.5],
                lows=[99.5, 99.5, 99.5, 99.5, 94.0, 99.5, 99.5])
    res = bt([1, 1, 0, -1, 0, 1, 0], bars, **{**STOPS, "stop_loss": 500.0})
    # the long reaches its target on bar 2; the short entered at bar 4's open sees a low of 94, above its
    # target (90) and below its stop (105): it ends on the signal; the last long is liquidated at the end.
    assert res.trades["exit_reason"].tolist() == ["take_profit", "signal", "end"]
    assert (res.metrics["n_take_profit"], res.metrics["n_stop_loss"]) == (1.0, 0.0)
