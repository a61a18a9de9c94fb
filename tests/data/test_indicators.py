"""Indicator kernels equal TA-Lib (and `ta`, after its different seeding has decayed) on real bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data import indicators as ind

talib = pytest.importorskip("talib")


def assert_close(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-6, scale: float = 0.0) -> None:
    """Same NaN warm-up, then |ours - ref| <= rtol * max(|ref|, scale) everywhere after it."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.any()
    err = np.abs(ours[ok] - ref[ok])
    bound = rtol * np.maximum(np.abs(ref[ok]), scale)
    worst = int(np.argmax(err - bound))
    assert (err <= bound).all(), f"row {worst}: {ours[ok][worst]} vs {ref[ok][worst]}"


@pytest.fixture(scope="module")
def ohlcv(week_bars: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: week_bars[c].to_numpy() for c in week_bars.columns}


@pytest.mark.parametrize("n", [2, 9, 20, 50, 200])
def test_ema_sma_equal_talib(ohlcv: dict[str, np.ndarray], n: int) -> None:
    c = ohlcv["close"]
    assert_close(ind.ema(c, n), talib.EMA(c, n))
    assert_close(ind.sma(c, n), talib.SMA(c, n))


@pytest.mark.parametrize("n", [2, 7, 14, 28])
def test_rsi_and_atr_equal_talib(ohlcv: dict[str, np.ndarray], n: int) -> None:
    h, lo, c = ohlcv["high"], ohlcv["low"], ohlcv["close"]
    assert_close(ind.rsi(c, n), talib.RSI(c, n))
    assert_close(ind.atr(h, lo, c, n), talib.ATR(h, lo, c, n))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 10, 16)])
def test_macd_equals_talib(ohlcv: dict[str, np.ndarray], fast: int, slow: int, signal: int) -> None:
    c = ohlcv["close"]
    # MACD crosses zero, where relative error is meaningless: near zero it is measured against 1 USD.
    for ours, ref in zip(ind.macd(c, fast, slow, signal), talib.MACD(c, fast, slow, signal), strict=True):
        assert_close(ours, ref, scale=1.0)


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (10, 1.5), (50, 3.0)])
def test_bbands_equal_talib(ohlcv: dict[str, np.ndarray], n: int, k: float) -> None:
    c = ohlcv["close"]
    for ours, ref in zip(ind.bbands(c, n, k), talib.BBANDS(c, n, k, k), strict=True):
        assert_close(ours, ref)


def test_long_series_rolling_variance_stays_exact() -> None:
    # 300k bars around 40,000 with tiny moves: a running sum of squares would lose the variance.
    rng = np.random.default_rng(7)
    x = 40_000 + np.cumsum(rng.normal(0, 0.5, 300_000))
    mean, var = ind.rolling_mean_var(x, 20)
    w = np.lib.stride_tricks.sliding_window_view(x, 20)
    np.testing.assert_allclose(mean[19:], w.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(var[19:], w.var(axis=1), rtol=1e-7)
    assert np.isnan(mean[:19]).all()


def test_short_inputs_are_all_nan() -> None:
    x = np.array([1.0, 2.0, 3.0])
    for out in (ind.ema(x, 5), ind.sma(x, 5), ind.rsi(x, 5), ind.atr(x, x, x, 5), *ind.macd(x),
                *ind.bbands(x, 5)):
        assert len(out) == 3 and np.isnan(out).all()
    assert len(ind.ema(np.array([]), 3)) == 0


def test_vwap_matches_definition(ohlcv: dict[str, np.ndarray]) -> None:
    h, lo, c, v = ohlcv["high"], ohlcv["low"], ohlcv["close"], ohlcv["volume"]
    tp = pd.Series((h + lo + c) / 3)
    vol = pd.Series(v)
    ref = (tp * vol).rolling(60).sum() / vol.rolling(60).sum()
    np.testing.assert_allclose(ind.vwap_rolling(h, lo, c, v, 60), ref, rtol=1e-9)
    day = np.repeat(np.arange(7), 1440)
    anchored = ind.vwap_anchored(h, lo, c, v, day)
    ref_day = (tp * vol).groupby(day).cumsum() / vol.groupby(day).cumsum()
    np.testing.assert_allclose(anchored, ref_day, rtol=1e-9)
    assert anchored[1440] == pytest.approx(tp[1440])  # each day starts afresh


class TestAgainstTa:
    """`ta` seeds EMA/RSI/ATR differently; after 40 periods the seed's weight is below 1e-7."""

    @staticmethod
    def _after(ours: np.ndarray, ref: pd.Series, skip: int) -> None:
        assert_close(ours[skip:], ref.to_numpy()[skip:])

    def test_trend_and_volatility(self, week_bars: pd.DataFrame) -> None:
        import ta

        c, h, lo = week_bars["close"], week_bars["high"], week_bars["low"]
        self._after(ind.sma(c.to_numpy(), 20), ta.trend.SMAIndicator(c, 20).sma_indicator(), 19)
        self._after(ind.ema(c.to_numpy(), 20), ta.trend.EMAIndicator(c, 20).ema_indicator(), 20 * 40)
        bb = ta.volatility.BollingerBands(c, 20, 2)
        up, mid, low = ind.bbands(c.to_numpy(), 20, 2.0)
        self._after(up, bb.bollinger_hband(), 19)
        self._after(low, bb.bollinger_lband(), 19)
        self._after(mid, bb.bollinger_mavg(), 19)
        rsi = ta.momentum.RSIIndicator(c, 14).rsi()
        self._after(ind.rsi(c.to_numpy(), 14), rsi, 14 * 40)
        atr = ta.volatility.AverageTrueRange(h, lo, c, 14).average_true_range()
        self._after(ind.atr(h.to_numpy(), lo.to_numpy(), c.to_numpy(), 14), atr, 14 * 40)
