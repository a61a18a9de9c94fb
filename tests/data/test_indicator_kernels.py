"""Numba kernels: exact flat windows, rolling variance against a two-pass sum, period checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data import indicators as ind


def two_pass_var(x: np.ndarray, n: int) -> np.ndarray:
    w = np.lib.stride_tricks.sliding_window_view(x, n)
    return ((w - w.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)


def test_flat_windows_after_a_move_are_exactly_flat() -> None:
    # A volatile stretch, then the price parks far away: running sums would leave a residue there.
    rng = np.random.default_rng(3)
    x = np.r_[40_000 + np.cumsum(rng.normal(0, 50, 500)), np.full(100, 43_210.5), 43_210.51,
              np.full(100, 43_210.5)]
    mean, var = ind.rolling_mean_var(x, 20)
    up, mid, low = ind.bbands(x, 20, 2.0)
    flat = np.r_[np.arange(519, 600), np.arange(620, len(x))]
    assert (var[flat] == 0.0).all()
    assert (mean[flat] == 43_210.5).all()
    assert (up[flat] == 43_210.5).all() and (low[flat] == 43_210.5).all() and (mid[flat] == 43_210.5).all()
    # One tick off inside the flat stretch is a real (tiny) variance, kept to full precision.
    tick = np.arange(600, 620)
    np.testing.assert_allclose(var[tick], two_pass_var(x, 20)[tick - 19], rtol=1e-9)
    assert (var[tick] > 0).all()


def test_rolling_variance_on_real_bars_matches_two_pass(week_bars: pd.DataFrame) -> None:
    c = week_bars["close"].to_numpy()
    for n in (5, 20, 200):
        mean, var = ind.rolling_mean_var(c, n)
        ref = two_pass_var(c, n)
        ok = ref > 1e-6  # every window that is not flat: one 0.01 tick in 200 bars gives 5e-7
        np.testing.assert_allclose(var[n - 1 :][ok], ref[ok], rtol=1e-7)
        assert (var[n - 1 :][~ok] <= 1e-6).all()
        np.testing.assert_allclose(mean[n - 1 :], np.lib.stride_tricks.sliding_window_view(c, n).mean(axis=1),
                                   rtol=1e-13)


def test_period_one_and_bad_periods() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    np.testing.assert_array_equal(ind.sma(x, 1), x)
    np.testing.assert_array_equal(ind.ema(x, 1), x)
    assert (ind.rolling_mean_var(x, 1)[1] == 0).all()
    for bad in (0, -3):
        with pytest.raises(ValueError, match="period"):
            ind.ema(x, bad)
        with pytest.raises(ValueError, match="period"):
            ind.bbands(x, bad)


def test_non_contiguous_and_integer_inputs_are_accepted() -> None:
    x = np.arange(100, dtype=np.int64) % 7 + 100
    strided = np.repeat(x.astype(float), 2)[::2]
    np.testing.assert_allclose(ind.ema(x, 10), ind.ema(strided, 10))
    np.testing.assert_allclose(ind.rsi(strided, 14), ind.rsi(x.astype(float), 14))


def test_long_flat_stretches_are_zero_exactly_where_the_window_is_flat() -> None:
    x = np.full(20_000, 27_000.0)
    x[::1_000] += 0.01  # a one-tick spike every 1,000 bars
    n = 200
    mean, var = ind.rolling_mean_var(x, n)
    windows = np.lib.stride_tricks.sliding_window_view(x, n)
    flat = (windows == windows[:, -1:]).all(axis=1)
    np.testing.assert_array_equal(var[n - 1 :] == 0.0, flat)
    np.testing.assert_allclose(var[n - 1 :][~flat], two_pass_var(x, n)[~flat], rtol=1e-7)
    assert (mean[n - 1 :][flat] == 27_000.0).all()
