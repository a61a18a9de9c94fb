"""Backtest-live parity: what makes the engine trustworthy.

A day of real bars is replayed through the simulator in paper mode, bar by bar, with the live loop trading a
model; the backtest then runs on the same bars with the same model and settings. The decisions must be the
same bar for bar (signal, side held, what to do at the next open), and the fills may differ only by what the
backtest does not model as prices: the simulator's spread and slippage. ``LIVE_PARITY_DAYS`` replays more days.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from engine.mt5.sim.settings import SimSettings
from engine.trading.backtest import run_backtest
from engine.trading.signals import class_probabilities, order_intent, signals_from_proba
from tests.live.conftest import DECISION, LOOSE, REPLAY_START

DAYS = float(os.environ.get("LIVE_PARITY_DAYS", "1"))
SPREAD, SLIPPAGE = 1500, 300  # points of 0.01 USD: 15 USD spread, up to 3 USD slippage against the trader
OFFSET = pd.Timedelta(hours=2)  # the simulator's server time


def _live_trades(simulator, magic: int) -> pd.DataFrame:
    deals = pd.DataFrame(simulator.market.account.deals)
    deals = deals[deals["magic"] == magic]
    opened = deals[deals["entry"] == 0].set_index("position_id")
    closed = deals[deals["entry"] == 1].set_index("position_id")
    def utc(seconds: pd.Series) -> pd.Series:
        stamps = pd.to_datetime(seconds, unit="s", utc=True) - OFFSET
        return stamps.dt.floor("min").dt.as_unit("ns")  # a stop fills inside its bar: the bar's open time, as the backtest's
    out = pd.DataFrame({"entry_time": utc(opened["time"]), "side": np.where(opened["type"] == 0, 1, -1),
                        "entry_price": opened["price"]})
    out["exit_time"] = utc(closed["time"]).reindex(out.index)
    out["exit_price"] = closed["price"].reindex(out.index)
    comment = closed["comment"].reindex(out.index).fillna("")
    out["exit_reason"] = np.select([comment == "sl", comment == "tp"], ["stop_loss", "take_profit"], "signal")
    return out.sort_values("entry_time").reset_index(drop=True)


def test_live_paper_trading_makes_the_backtests_decisions_bar_for_bar(make_rig, sample_bars, features,
                                                                       model) -> None:
    n = int(DAYS * 1440)
    # the deviation budget covers the slippage: a market order is requoted beyond it
    rig = make_rig(max_bars=n, deviation=2 * SLIPPAGE, sim=SimSettings(
        start=REPLAY_START, speed=0.0, spread_points=SPREAD, slippage_points=SLIPPAGE, seed=11))
    stats = rig.run()
    assert stats.bars == n and stats.decisions == n and stats.errors == 0

    decisions = rig.records("decision")
    times = pd.DatetimeIndex([r.bar_time for r in decisions])
    assert times[0] == pd.Timestamp(REPLAY_START) and len(times) == n
    assert all(r.detail["fresh"] for r in decisions)

    # -- the backtest on the same bars: the warm-up the loop started from, then the replayed bars
    bars = sample_bars.loc[times[0] - pd.Timedelta(minutes=rig.loop.settings.warmup):times[-1]]
    feats = features.transform(bars).loc[times, model.feature_names_]
    p_up, p_down = class_probabilities(model.predict_proba(feats.to_numpy()))
    signals = signals_from_proba(p_up, p_down, DECISION)
    result = run_backtest(pd.Series(signals, index=times), bars.loc[times, ["open", "high", "low", "close"]],
                          DECISION, bar_seconds=60, limits=LOOSE)

    live_signal = np.array([r.detail["signal"] for r in decisions], dtype=float)
    np.testing.assert_array_equal(live_signal, signals, err_msg="signals differ")

    # the side held at each bar's close, from the backtest's trades (entry bar .. the bar it left in)
    book = result.trades
    index = {t: i for i, t in enumerate(times)}
    held = np.zeros(n, dtype=int)
    for trade in book.itertuples():
        end = n if trade.exit_reason == "end" else index[trade.exit_time]
        held[index[trade.entry_time]:end] = trade.side
    live_held = np.array([r.detail["held"] for r in decisions])
    mismatch = np.flatnonzero(live_held != held)
    assert mismatch.size == 0, f"side held differs at bars {times[mismatch[:5]].tolist()}"

    # what to do at the next open: decide() with the backtest's own held sides and stop-outs
    stopped, stops = 0, {index[t.exit_time]: t.side for t in book.itertuples()
                         if t.exit_reason in ("stop_loss", "take_profit")}
    for j, record in enumerate(decisions):
        stopped = stops.get(j, stopped)
        intent = order_intent(held[j], signals[j], stopped)
        stopped = intent.stopped
        assert (record.detail["close_held"], record.detail["open_side"]) == (intent.close_held, intent.open_side), \
            f"decision of {times[j]} differs"

    # fills: the same trades at the same bars, prices apart by at most the spread plus the slippage
    live = _live_trades(rig.simulator, rig.loop.settings.magic)
    expected = book[book["exit_reason"] != "end"].reset_index(drop=True)
    assert len(expected) >= 10, "too few trades for a meaningful comparison"
    live = live.iloc[:len(expected)]
    pd.testing.assert_series_equal(live["entry_time"], expected["entry_time"], check_names=False)
    pd.testing.assert_series_equal(live["exit_time"], expected["exit_time"], check_names=False)
    assert live["side"].tolist() == expected["side"].tolist()
    assert live["exit_reason"].tolist() == expected["exit_reason"].astype(str).tolist()
    budget = (SPREAD + SLIPPAGE) * 0.01 + 1e-6
    entry_gap = (live["entry_price"] - expected["entry_price"]).abs()
    exit_gap = (live["exit_price"] - expected["exit_price"]).abs()
    assert entry_gap.max() <= budget and exit_gap.max() <= budget
    # and the spread is really there: a long pays the ask, a short sells at the bid less slippage
    longs = live["side"] == 1
    assert (live.loc[longs, "entry_price"] - expected.loc[longs, "entry_price"]).min() >= SPREAD * 0.01 - 1e-6
