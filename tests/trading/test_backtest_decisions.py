"""The decision rule the backtest and the live loop share, and the compiled kernel's use of it.

The kernel's numba cache is keyed on engine/trading/fills.py only: if engine/trading/signals.py changed and
the kernel were stale, its positions would stop matching ``decide`` called from Python here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.trading.signals import exit_on_bar, order_intent
from tests.trading.backtest_fixtures import FREE, bt, ohlc


@pytest.mark.parametrize(("held", "signal", "stopped", "close", "open_side", "still_stopped"), [
    (0, 1.0, 0, False, 1, 0),     # flat -> open long
    (1, 1.0, 0, False, 0, 0),     # keep the long
    (1, 0.0, 0, True, 0, 0),      # the signal left: close
    (1, -1.0, 0, True, -1, 0),    # reverse
    (0, np.nan, 0, False, 0, 0),  # no decision is flat
    (0, 1.0, 1, False, 0, 1),     # stopped out of a long, the signal still long: stay out
    (0, 0.0, 1, False, 0, 0),     # the signal left the stopped side: cleared
    (0, -1.0, 1, False, -1, 0),   # the other side is a new decision
])
def test_decide(held: int, signal: float, stopped: int, close: bool, open_side: int, still_stopped: int) -> None:
    intent = order_intent(held, signal, stopped)
    assert (intent.close_held, intent.open_side, intent.stopped) == (close, open_side, still_stopped)
    assert intent.reason


def test_exit_on_bar_is_the_worse_level_when_both_are_inside() -> None:
    assert exit_on_bar(1, 100.0, 111.0, 94.0, 95.0, 110.0) == (1, 95.0)
    assert exit_on_bar(-1, 100.0, 106.0, 89.0, 105.0, 90.0) == (1, 105.0)
    reason, price = exit_on_bar(1, 100.0, 101.0, 99.0, np.nan, np.nan)
    assert reason == -1 and np.isnan(price)


def test_the_kernel_holds_what_decide_says() -> None:
    rng = np.random.default_rng(5)
    n = 400
    signals = rng.choice([-1.0, 0.0, 1.0, np.nan], size=n, p=[0.3, 0.3, 0.3, 0.1])
    opens = 100 * np.exp(rng.normal(0, 0.01, n).cumsum())
    res = bt(list(signals), ohlc(list(opens)), sizing="lots", fixed_lots=1.0, **FREE)
    held, stopped, want = 0, 0, [0]
    for j in range(1, n):
        intent = order_intent(held, signals[j - 1], stopped)
        stopped = intent.stopped
        if intent.close_held:
            held = 0
        if intent.open_side:
            held = intent.open_side
        want.append(held)
    np.testing.assert_array_equal(res.frame["position"].to_numpy(), np.array(want, dtype="float64"))
    # every position change is a trade boundary: sum of trade PnL == equity change
    assert res.trades["net_pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 10_000.0, abs=1e-8)


def test_future_bars_do_not_change_the_past_in_lots() -> None:
    rng = np.random.default_rng(9)
    n, t = 300, 200
    opens = 100 * np.exp(rng.normal(0, 0.003, n).cumsum())
    bars = ohlc(list(opens), highs=list(opens * 1.004), lows=list(opens * 0.996))
    sig = rng.choice([-1.0, 0.0, 1.0], size=n)
    settings = {"sizing": "risk", "stop_loss": 30.0, "take_profit": 60.0}
    base = bt(list(sig), bars, **settings).frame
    future = bars.copy()
    future.iloc[t + 2:] *= rng.uniform(0.5, 1.5, (n - t - 2, 1))
    future.iloc[t + 1:, future.columns.get_loc("close")] *= 1.01
    sig2 = sig.copy()
    sig2[t + 1:] = rng.choice([-1.0, 0.0, 1.0], size=n - t - 1)
    changed = bt(list(sig2), future, **settings).frame
    pd.testing.assert_frame_equal(base.iloc[: t + 1], changed.iloc[: t + 1])
