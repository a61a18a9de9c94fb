"""From a model's class probabilities to what to do at the next open: the one decision rule that the
backtest and the live loop share, so a strategy that backtests is the strategy that trades.

Three steps, each a pure function of its inputs:

1. :func:`class_probabilities` and :func:`signals_from_proba`: a +1 / -1 / 0 signal per bar, decided at that
   bar's close from that bar's probabilities alone.
2. :func:`decide`: given the side held and the latest signal, whether to close what is held and which side to
   open, filled at the next bar's open. A trade closed by its stop-loss or take-profit is not re-entered
   while the signal keeps the side that was stopped (``stopped``): re-entering at the next open on the same
   stale signal would undo the stop. The signal must change (flat or the other side) first.
3. :func:`exit_on_bar`: whether a stop-loss or take-profit is hit inside a bar, and at what price.

``decide``, ``stop_levels`` and ``exit_on_bar`` are numba functions: the backtest kernel
(:mod:`engine.trading.fills`) calls them for every bar and the live loop calls them from Python with the
same results. :func:`order_intent` is the readable Python face of ``decide``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from engine.errors import DataQualityError

if TYPE_CHECKING:
    from engine.trading.backtest import BacktestSettings

# Exit reasons, as stored in the trades table (codes in the kernel, names in the table).
EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_TAKE_PROFIT, EXIT_END = 0, 1, 2, 3
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "end")


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


@njit(cache=True, nogil=True)
def side_of(signal: float) -> int:
    """+1, -1 or 0; no decision (NaN) is flat."""
    if signal > 0.0:
        return 1
    if signal < 0.0:
        return -1
    return 0


@njit(cache=True, nogil=True)
def decide(held: int, signal: float, stopped: int) -> tuple[bool, int, int]:
    """What to do at the next open: ``(close_held, open_side, stopped)``.

    ``held`` is the side held now (+1, -1, 0), ``signal`` the latest decision and ``stopped`` the side of a
    trade stopped out since the signal last changed (0 if none). ``close_held`` when the signal no longer
    wants the held side; ``open_side`` (+1, -1 or 0) is the side to open after that; the returned
    ``stopped`` is cleared once the signal leaves the stopped side.
    """
    want = side_of(signal)
    if stopped != 0 and want != stopped:
        stopped = 0
    close_held = held != 0 and want != held
    open_side = want if (want != 0 and want != held and want != stopped) else 0
    return close_held, open_side, stopped


@njit(cache=True, nogil=True)
def stop_levels(side: int, entry: float, sl_distance: float, tp_distance: float) -> tuple[float, float]:
    """Stop-loss and take-profit prices of a trade entered at ``entry`` (NaN distance: no such order)."""
    return entry - side * sl_distance, entry + side * tp_distance


@njit(cache=True, nogil=True)
def exit_on_bar(side: int, open_: float, high: float, low: float, sl: float, tp: float) -> tuple[int, float]:
    """``(reason, price)`` of a stop-loss or take-profit exit inside one bar, or ``(-1, nan)``.

    A bar that opens beyond a level (a gap) fills at its open, the price actually available. Otherwise
    the bar's low/high decide; when both levels lie inside one bar the order of the touches is unknown and
    the worse one, the stop-loss, is assumed. NaN levels never trigger.
    """
    if side > 0:
        if open_ <= sl:
            return EXIT_STOP_LOSS, open_
        if open_ >= tp:
            return EXIT_TAKE_PROFIT, open_
        if low <= sl:
            return EXIT_STOP_LOSS, sl
        if high >= tp:
            return EXIT_TAKE_PROFIT, tp
    elif side < 0:
        if open_ >= sl:
            return EXIT_STOP_LOSS, open_
        if open_ <= tp:
            return EXIT_TAKE_PROFIT, open_
        if high >= sl:
            return EXIT_STOP_LOSS, sl
        if low <= tp:
            return EXIT_TAKE_PROFIT, tp
    return -1, np.nan


@dataclass(frozen=True)
class OrderIntent:
    """What the next open should do: close the held position, then open ``open_side`` (0 = nothing)."""

    close_held: bool
    open_side: int
    stopped: int  # carry into the next decision

    @property
    def reason(self) -> str:
        if self.close_held and self.open_side:
            return f"reverse to {'long' if self.open_side > 0 else 'short'}"
        if self.close_held:
            return "close: the signal left the held side"
        if self.open_side:
            return f"open {'long' if self.open_side > 0 else 'short'}"
        return "hold" if not self.stopped else "stay out: the signal still wants the side that was stopped out"


def order_intent(held: int, signal: float, stopped: int = 0) -> OrderIntent:
    """:func:`decide` as a value with a reason (for the live loop and logs)."""
    close_held, open_side, still_stopped = decide(int(held), float(signal), int(stopped))
    return OrderIntent(bool(close_held), int(open_side), int(still_stopped))
