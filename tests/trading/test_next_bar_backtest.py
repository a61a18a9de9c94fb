"""The next-bar backtest: fills at the next open, cost accounting from the definitions, no lookahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.errors import ConfigError, DataQualityError
from engine.trading.backtest import (
    BacktestSettings,
    class_probabilities,
    run_backtest,
    signals_from_proba,
    trades,
)

FREE = BacktestSettings(spread_bps=0.0, commission_bps=0.0, slippage_bps=0.0, initial_equity=1.0)


def _bars(opens: list[float], closes: list[float] | None = None, freq: str = "5min") -> pd.DataFrame:
    """Bars whose close is NOT the next open (by default 0.7% off it, alternating sides, as after a gap or
    a wide spread): a backtest that earned to a bar's own close instead of the next open would get other
    numbers from every fixture here, so the expected values below pin next-open fills."""
    idx = pd.date_range("2024-01-01", periods=len(opens), freq=freq, tz="UTC", name="timestamp")
    if closes is None:
        nxt = [*opens[1:], opens[-1]]
        closes = [price * (1.007 if i % 2 else 0.993) for i, price in enumerate(nxt)]
    assert all(c != o for c, o in zip(closes[:-1], opens[1:], strict=True)), "fixture: close == next open"
    return pd.DataFrame({"open": opens, "close": closes}, index=idx, dtype="float64")


def _bt(signals: list[float], bars: pd.DataFrame, settings: BacktestSettings = FREE):
    return run_backtest(pd.Series(signals, index=bars.index, dtype="float64"), bars, settings, bar_seconds=300)


def test_signal_fills_at_next_open_not_at_the_close_it_was_computed_on() -> None:
    # The price jumps 100 -> 110 between the signal's bar and the next open: that jump is not earned. The
    # position is held from bar 1's open (110) to bar 2's open (121); bar 1's own close (115) is irrelevant.
    bars = _bars([100.0, 110.0, 121.0, 121.0], closes=[104.0, 115.0, 118.0, 121.0])
    res = _bt([1, 0, 0, 0], bars)
    assert res.frame["position"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert res.metrics["total_return"] == pytest.approx(121.0 / 110.0 - 1.0)


def test_every_bar_earns_open_to_next_open_and_only_the_last_close_counts() -> None:
    rng = np.random.default_rng(3)
    opens = 100 * np.exp(rng.normal(0, 0.01, 40).cumsum())
    closes = opens * np.exp(rng.normal(0, 0.01, 40))  # unrelated to the next open
    bars = _bars(list(opens), closes=list(closes))
    sig = rng.choice([-1.0, 0.0, 1.0], size=40).tolist()
    res = _bt(sig, bars)
    want = np.append(opens[1:] / opens[:-1], closes[-1] / opens[-1]) - 1.0
    np.testing.assert_allclose(res.frame["price_return"].to_numpy(), want, rtol=1e-12)
    # Moving every close but the last changes nothing: fills and marks use opens.
    moved = bars.copy()
    moved.iloc[:-1, moved.columns.get_loc("close")] *= rng.uniform(0.8, 1.2, 39)
    pd.testing.assert_frame_equal(_bt(sig, moved).frame, res.frame)


def test_positions_are_signals_shifted_by_one_bar() -> None:
    rng = np.random.default_rng(0)
    opens = list(100 + rng.normal(0, 1, 50).cumsum())
    sig = rng.choice([-1.0, 0.0, 1.0], size=50).tolist()
    res = _bt(sig, _bars(opens))
    pos = res.frame["position"].to_numpy()
    assert pos[0] == 0.0
    np.testing.assert_array_equal(pos[1:], np.array(sig[:-1]))


def test_costs_of_one_round_trip() -> None:
    settings = BacktestSettings(spread_bps=2.0, commission_bps=1.0, slippage_bps=0.5, initial_equity=1000.0)
    rate = (2.0 / 2 + 1.0 + 0.5) / 1e4  # half spread + commission + slippage per unit traded
    bars = _bars([100.0, 100.0, 110.0, 110.0])
    res = _bt([1, 0, 0, 0], bars, settings)
    # bar 1: enter long at 100 (pay rate), earn 10%; bar 2: exit at 110 (pay rate); bar 3: flat.
    expected = 1000.0 * (1 + 0.10 - rate) * (1 - rate)
    assert res.equity.iloc[-1] == pytest.approx(expected, rel=1e-12)
    assert res.frame["traded"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert res.metrics["turnover"] == pytest.approx(2 / 4)
    assert res.metrics["n_trades"] == 1
    assert trades(res.frame, rate)["net_return"].iloc[0] == pytest.approx(0.10 - 2 * rate)


def test_flip_trades_two_units_and_short_earns_the_fall() -> None:
    settings = BacktestSettings(spread_bps=0.0, commission_bps=10.0, slippage_bps=0.0, initial_equity=1.0)
    rate = 10.0 / 1e4
    bars = _bars([100.0, 100.0, 120.0, 90.0, 90.0])
    res = _bt([1, -1, 0, 0, 0], bars, settings)
    # long over bar 1 (+20%), flip at bar 2's open (2 units), short over bar 2 (120 -> 90: +25%), exit at bar 3.
    assert res.frame["traded"].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0]
    expected = (1 + 0.20 - rate) * (1 + 0.25 - 2 * rate) * (1 - rate)
    assert res.equity.iloc[-1] == pytest.approx(expected, rel=1e-12)
    book = trades(res.frame, rate)
    assert book["side"].tolist() == [1.0, -1.0]
    assert res.metrics["n_trades"] == 2
    assert res.metrics["hit_rate"] == 1.0


def test_position_open_at_the_end_is_closed_at_the_last_close_and_charged() -> None:
    settings = BacktestSettings(spread_bps=0.0, commission_bps=5.0, slippage_bps=0.0, initial_equity=1.0)
    bars = _bars([100.0, 100.0, 100.0], closes=[101.0, 99.0, 105.0])
    res = _bt([0, 1, 1], bars, settings)
    # entered at bar 2's open (100), marked to its close (105), liquidated there: two units of cost.
    assert res.frame["traded"].iloc[-1] == 2.0
    assert res.metrics["total_return"] == pytest.approx(0.05 - 2 * 5e-4)


def test_max_drawdown_and_hit_rate_from_definitions() -> None:
    # long 100 -> 110 (+10%), flat, long 110 -> 99 (-10%): equity 1, 1.1, 1.1, 0.99
    bars = _bars([100.0, 100.0, 110.0, 110.0, 99.0, 99.0])
    res = _bt([1, 0, 1, 0, 0, 0], bars)
    assert res.metrics["max_drawdown"] == pytest.approx(1 - 0.99 / 1.1)
    assert res.metrics["hit_rate"] == pytest.approx(0.5)
    assert res.metrics["exposure"] == pytest.approx(2 / 6)


def test_sharpe_is_annualised_for_the_bar_size() -> None:
    bars = _bars([100.0, 100.0, 101.0, 100.0, 102.0, 101.0])
    res = _bt([1, 1, 1, 1, 1, 0], bars)
    net = res.frame["net"].to_numpy()
    per_year = 365 * 24 * 12  # five-minute bars, trading around the clock
    assert res.metrics["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(per_year))
    hourly = run_backtest(pd.Series([1, 1, 1, 1, 1, 0], index=bars.index, dtype="float64"), bars, FREE,
                          bar_seconds=3600)
    assert hourly.metrics["sharpe"] == pytest.approx(res.metrics["sharpe"] / math.sqrt(12))


def test_flat_book_has_zero_metrics() -> None:
    res = _bt([0, 0, 0], _bars([100.0, 101.0, 102.0]))
    assert res.metrics["total_return"] == 0.0
    assert res.metrics["sharpe"] == 0.0
    assert res.metrics["n_trades"] == 0.0
    assert res.metrics["hit_rate"] == 0.0


def test_future_bars_and_signals_do_not_change_the_past() -> None:
    rng = np.random.default_rng(7)
    n, t = 200, 120
    opens = 100 * np.exp(rng.normal(0, 0.002, n).cumsum())
    closes = opens * np.exp(rng.normal(0, 0.001, n))
    bars = pd.DataFrame({"open": opens, "close": closes},
                        index=pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"))
    proba = rng.dirichlet([1, 1], size=n)
    settings = BacktestSettings(long_threshold=0.55, short_threshold=0.55)
    p_up, p_down = class_probabilities(proba)
    sig = pd.Series(signals_from_proba(p_up, p_down, settings), index=bars.index)
    base = run_backtest(sig, bars, settings, bar_seconds=60).frame

    # Scramble everything after bar t+1's open: the books up to bar t are untouched.
    future = bars.copy()
    future.iloc[t + 2:, future.columns.get_loc("open")] *= rng.uniform(0.5, 1.5, n - t - 2)
    future.iloc[t + 1:, future.columns.get_loc("close")] *= rng.uniform(0.5, 1.5, n - t - 1)
    other_proba = proba.copy()
    other_proba[t + 1:] = rng.dirichlet([1, 1], size=n - t - 1)
    p_up2, p_down2 = class_probabilities(other_proba)
    sig2 = pd.Series(signals_from_proba(p_up2, p_down2, settings), index=bars.index)
    changed = run_backtest(sig2, future, settings, bar_seconds=60).frame

    pd.testing.assert_frame_equal(base.iloc[: t + 1], changed.iloc[: t + 1])
    # the decision taken at t is the position held from t+1's open
    assert changed["position"].iloc[t + 1] == base["signal"].iloc[t]


def test_signal_rule_is_per_row_and_respects_thresholds() -> None:
    s = BacktestSettings(long_threshold=0.6, short_threshold=0.7)
    p_up = np.array([0.61, 0.60, 0.25, 0.29, 0.5])
    np.testing.assert_array_equal(signals_from_proba(p_up, 1 - p_up, s), [1, 0, -1, -1, 0])
    no_short = BacktestSettings(long_threshold=0.6, short_threshold=0.7, allow_short=False)
    np.testing.assert_array_equal(signals_from_proba(p_up, 1 - p_up, no_short), [1, 0, 0, 0, 0])
    # three classes: down / flat / up
    proba = np.array([[0.1, 0.3, 0.6], [0.8, 0.1, 0.1], [0.3, 0.4, 0.3]])
    up, down = class_probabilities(proba)
    np.testing.assert_array_equal(signals_from_proba(up, down, BacktestSettings(0.55, 0.55)), [1, -1, 0])


def test_bad_inputs_raise_typed_errors() -> None:
    bars = _bars([100.0, 101.0, 102.0])
    with pytest.raises(DataQualityError, match="same index"):
        run_backtest(pd.Series([1.0, 0.0]), bars, FREE, bar_seconds=60)
    with pytest.raises(DataQualityError, match=r"\[-1, 1\]"):
        _bt([2, 0, 0], bars)
    with pytest.raises(DataQualityError, match="empty"):
        run_backtest(pd.Series([], dtype="float64"), bars.iloc[:0], FREE, bar_seconds=60)
    with pytest.raises(ConfigError, match=r"backtest\.spread_bps"):
        BacktestSettings(spread_bps=-1.0)
    with pytest.raises(ConfigError, match=r"backtest\.long_threshold"):
        BacktestSettings(long_threshold=1.5)
