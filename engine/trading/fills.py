"""The backtest's bar loop for positions held in lots: fills, stops, costs and equity in one numba pass.

One pass over the bars, O(bars), no Python per bar or per trade. For bar ``j``:

1. At ``open[j]``: act on the signal decided at bar ``j-1``'s close (:func:`engine.trading.signals.decide`):
   close what the signal no longer wants, then open the side it wants, sized now
   (:func:`size_lots`, the RiskManager's maths) and held at that size until it is closed.
2. Inside bar ``j``: the stop-loss / take-profit check (:func:`engine.trading.signals.exit_on_bar`) against
   the bar's open (gaps), low and high.
3. Mark what is still held to ``open[j+1]`` (the last bar: to its close, where it is liquidated).

Every fill (entry, exit, stop) pays ``cost_rate`` of its notional (half spread + slippage + commission), at
the mid price the bars carry. ``equity[j]`` is the account after bar ``j`` valued at the next open.

The kernel's numba cache is keyed on this file only: a change to :mod:`engine.trading.signals` alone leaves
a stale compiled kernel behind, which tests/trading/test_backtest_decisions.py would catch (it compares
the kernel's positions with ``decide`` called from Python).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.trading.signals import EXIT_END, EXIT_SIGNAL, decide, exit_on_bar, side_of, stop_levels

# Sizing modes of the kernel (BacktestSettings.sizing other than "rebalance").
SIZE_EQUITY, SIZE_LOTS, SIZE_RISK = 1, 2, 3
VOLUME_EPS = 1e-9  # as engine.trading.sizing: 0.1 + 0.2 lots count as 0.3 lots


@njit(cache=True, nogil=True)
def floor_to_step(volume: float, step: float, decimals: int) -> float:
    """engine.trading.sizing.floor_to_step, compiled (``decimals`` of the step precomputed)."""
    steps = math.floor(volume / step + VOLUME_EPS)
    if steps < 0:
        steps = 0
    return round(steps * step, decimals)


@njit(cache=True, nogil=True)
def size_lots(mode: int, equity: float, strength: float, entry: float, stop: float, sizing: np.ndarray,
              decimals: int) -> float:
    """Lots of a new position; 0 when nothing may be traded.

    ``sizing`` = [equity_fraction, fixed_lots, risk_per_trade, volume_min, ceiling, volume_step, point,
    point_value, value_per_price]. ``risk`` mode is :func:`engine.trading.sizing.position_size` (same
    operations in the same order, so the same lots): risk_per_trade x equity / (stop distance in points x
    point value), rounded down to the volume step, capped at the ceiling, refused below the minimum lot.
    """
    if not equity > 0.0 or not entry > 0.0:
        return 0.0
    fraction, fixed, risk, vmin, ceiling, step, point, point_value, value_per_price = (
        sizing[0], sizing[1], sizing[2], sizing[3], sizing[4], sizing[5], sizing[6], sizing[7], sizing[8])
    if mode == SIZE_LOTS:
        raw = fixed
    elif mode == SIZE_EQUITY:
        raw = fraction * strength * equity / (entry * value_per_price)
    else:
        if not (stop > 0.0):  # NaN stop (ATR still warming up) or a stop at or below zero
            return 0.0
        per_lot = abs(entry - stop) / point * point_value
        if per_lot <= 0.0:
            return 0.0
        raw = risk * equity / per_lot
    if ceiling < vmin - VOLUME_EPS:
        return 0.0
    volume = floor_to_step(min(raw, ceiling), step, decimals)
    if volume < vmin - VOLUME_EPS:
        return 0.0
    return volume


@njit(cache=True, nogil=True)
def record_exit(k: int, j: int, price: float, reason: int, held: int, lots: float, entry_cost: float,
                value_per_price: float, cost_rate: float, bar_cost: float, bar_traded: float, t_entry_px: np.ndarray,
                t_exit: np.ndarray, t_exit_px: np.ndarray, t_pnl: np.ndarray, t_cost: np.ndarray,
                t_reason: np.ndarray) -> tuple:
    """Close trade ``k`` (``held`` x ``lots``) at ``price`` on bar ``j``: the one place a signal exit, a stop
    and the final liquidation are booked, so the three are costed alike.

    Writes the trade's exit columns and returns the bar's ``(cost, traded notional)`` with this fill added,
    and the trade count after it (``k + 1``). The mark-to-market pnl of the bar stays with the caller: a
    signal exit at the open has none left, a stop books it up to the stop price, the last bar marked it already.
    """
    notional = lots * value_per_price * price
    t_exit[k] = j
    t_exit_px[k] = price
    t_pnl[k] = held * lots * (price - t_entry_px[k]) * value_per_price
    t_cost[k] = entry_cost + cost_rate * notional
    t_reason[k] = reason
    return bar_cost + cost_rate * notional, bar_traded + notional, k + 1


@njit(cache=True, nogil=True)
def simulate(signal: np.ndarray, opens: np.ndarray, highs: np.ndarray, lows: np.ndarray, closes: np.ndarray,
             sl_distance: np.ndarray, tp_distance: np.ndarray, mode: int, sizing: np.ndarray, decimals: int,
             initial_equity: float, cost_rate: float, has_sl: bool, has_tp: bool) -> tuple:
    """Per bar: (lots held, pnl, cost, traded notional, equity); per trade: (entry bar, exit bar, side, lots,
    entry price, exit price, pnl, cost, reason); and the number of entries skipped.

    ``sl_distance`` / ``tp_distance``: price distances of the stops set by the signal of each bar. With
    ``has_sl`` / ``has_tp`` a NaN distance (an ATR still warming up) skips the entry: a trade is never opened
    without the stop it was configured with.
    """
    n = signal.shape[0]
    value_per_price = sizing[8]
    lots_held = np.zeros(n)
    pnl = np.zeros(n)
    cost = np.zeros(n)
    traded = np.zeros(n)
    equity = np.zeros(n)
    t_entry = np.zeros(n, dtype=np.int64)
    t_exit = np.zeros(n, dtype=np.int64)
    t_side = np.zeros(n, dtype=np.int64)
    t_lots = np.zeros(n)
    t_entry_px = np.zeros(n)
    t_exit_px = np.zeros(n)
    t_pnl = np.zeros(n)
    t_cost = np.zeros(n)
    t_reason = np.zeros(n, dtype=np.int64)
    n_trades = 0
    skipped = 0
    held = 0
    stopped = 0
    lots = 0.0
    mark = 0.0
    sl = np.nan
    tp = np.nan
    entry_cost = 0.0
    before = initial_equity
    for j in range(n):
        bar_pnl = 0.0
        bar_cost = 0.0
        bar_traded = 0.0
        price = opens[j]
        if j > 0:
            close_held, open_side, stopped = decide(held, signal[j - 1], stopped)
            if close_held:
                bar_cost, bar_traded, n_trades = record_exit(
                    n_trades, j, price, EXIT_SIGNAL, held, lots, entry_cost, value_per_price, cost_rate, bar_cost,
                    bar_traded, t_entry_px, t_exit, t_exit_px, t_pnl, t_cost, t_reason)
                held = 0
            if open_side != 0:
                sl, tp = stop_levels(open_side, price, sl_distance[j - 1], tp_distance[j - 1])
                strength = abs(signal[j - 1])
                if (has_sl and np.isnan(sl)) or (has_tp and np.isnan(tp)):
                    lots = 0.0
                else:
                    lots = size_lots(mode, before - bar_cost, strength, price, sl, sizing, decimals)
                if lots > 0.0:
                    notional = lots * value_per_price * price
                    entry_cost = cost_rate * notional
                    bar_cost += entry_cost
                    bar_traded += notional
                    held = open_side
                    mark = price
                    t_entry[n_trades] = j
                    t_side[n_trades] = held
                    t_lots[n_trades] = lots
                    t_entry_px[n_trades] = price
                else:
                    skipped += 1
        if held != 0:
            lots_held[j] = held * lots
            reason, exit_px = exit_on_bar(held, opens[j], highs[j], lows[j], sl, tp)
            if reason >= 0:
                bar_pnl += held * lots * (exit_px - mark) * value_per_price
                bar_cost, bar_traded, n_trades = record_exit(
                    n_trades, j, exit_px, reason, held, lots, entry_cost, value_per_price, cost_rate, bar_cost,
                    bar_traded, t_entry_px, t_exit, t_exit_px, t_pnl, t_cost, t_reason)
                stopped = held
                held = 0
        if held != 0:
            nxt = opens[j + 1] if j + 1 < n else closes[j]
            bar_pnl += held * lots * (nxt - mark) * value_per_price
            mark = nxt
            if j + 1 == n:  # liquidate at the last close, and pay for it
                bar_cost, bar_traded, n_trades = record_exit(
                    n_trades, j, nxt, EXIT_END, held, lots, entry_cost, value_per_price, cost_rate, bar_cost,
                    bar_traded, t_entry_px, t_exit, t_exit_px, t_pnl, t_cost, t_reason)
                held = 0
        pnl[j] = bar_pnl
        cost[j] = bar_cost
        traded[j] = bar_traded
        before = before + bar_pnl - bar_cost
        equity[j] = before
    k = n_trades
    return (lots_held, pnl, cost, traded, equity, t_entry[:k], t_exit[:k], t_side[:k], t_lots[:k], t_entry_px[:k],
            t_exit_px[:k], t_pnl[:k], t_cost[:k], t_reason[:k], skipped)


def step_decimals(step: float) -> int:
    """Decimals of a volume step as engine.trading.sizing.floor_to_step counts them (0.01 -> 2)."""
    from decimal import Decimal

    return max(0, -Decimal(str(step)).normalize().as_tuple().exponent)  # type: ignore[operator]


__all__ = ["SIZE_EQUITY", "SIZE_LOTS", "SIZE_RISK", "side_of", "simulate", "size_lots", "step_decimals"]
