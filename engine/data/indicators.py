"""Indicator kernels on float64 numpy arrays, equal to TA-Lib's definitions and seeding.

Every kernel returns an array as long as its input with NaN during warm-up (TA-Lib's lookback), and
every value at row t depends only on rows <= t (each loop runs forward from a seed placed at a fixed row
offset from the start; rolling windows look back). Each indicator is one numba loop over its inputs
(``cache=True``: compiled once per machine into ``__pycache__``, loaded from there by later processes):
RSI's moves, gains, losses and ratio; ATR's true range and Wilder average; MACD's two EMAs, line, signal
and histogram; Bollinger's mean, deviation and bands. Updates are written ``a*y + k*x`` (TA-Lib writes
``y + k*(x - y)`` and Wilder's ``(y*(n-1) + x)/n``): the same value to a few ulps, with a shorter
dependency chain per step.

Inputs must be free of NaN: one NaN would poison every later value of a recursion.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Rolling moments are re-referenced and re-summed from scratch every max(_BLOCK, 4n) rows, so rounding
# stays at the size of one short block. Measured against two-pass sums on 2 years of 1m bars: the
# variance within 2e-7 relative wherever it exceeds 1e-6 (every non-flat window), 2e-10 above 0.01;
# the cost is ~25% more additions for n = 20.
_BLOCK = 64
# TA-Lib treats |x| < 1e-8 as zero (TA_IS_ZERO) when dividing in RSI.
_TA_ZERO = 1e-8

_jit = njit(cache=True, nogil=True)


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _warm(n: int, warm: int) -> np.ndarray:
    """An output whose first ``warm`` rows are NaN and the rest left for a kernel that writes them all.

    Writing each fresh page once, not NaN-filled first, saves a pass over memory per output.
    """
    out = np.empty(n)
    out[:warm] = np.nan
    return out


def _period(n: int) -> int:
    n = int(n)
    if n < 1:
        raise ValueError(f"indicator period must be >= 1, got {n}")
    return n


def _f64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


# -- rolling windows ------------------------------------------------------------------------------
@_jit
def _flat(x: np.ndarray, lo: int, hi: int) -> bool:
    # A plain loop, not all(<generator>): the loop is what numba compiles to an early-exit scan.
    for j in range(lo, hi):  # noqa: SIM110
        if x[j] != x[hi]:
            return False
    return True


@_jit
def _moments(x: np.ndarray, n: int, nbdev: float, mode: int,
             a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """Trailing-``n`` moments from row n-1 on; rows before are left as they are (NaN from the caller).

    mode 0: a = mean. mode 1: a = mean, b = population variance. mode 2: a, b, c = mean + nbdev sd,
    mean, mean - nbdev sd (TA-Lib BBANDS). The running sums are of deviations from a reference (the
    window's mean when a block starts), re-summed from scratch every block: the variance of
    40,000-dollar prices is never the difference of two numbers near 1e15, and rounding cannot build up.
    """
    size = len(x)
    inv = 1.0 / n
    block = max(_BLOCK, 4 * n)
    flat_at = -2  # the last row whose window was found flat
    start = n - 1
    while start < size:
        ref = 0.0
        for j in range(start - n + 1, start + 1):
            ref += x[j]
        ref *= inv
        s1 = 0.0
        s2 = 0.0
        for j in range(start - n + 1, start + 1):
            d = x[j] - ref
            s1 += d
            s2 += d * d
        end = min(start + block, size)
        for t in range(start, end):
            if t > start:
                new = x[t] - ref
                old = x[t - n] - ref
                s1 += new - old
                s2 += new * new - old * old
            m = s1 * inv
            mean = ref + m
            if mode == 0:
                a[t] = mean
                continue
            var = s2 * inv - m * m
            # A variance within rounding of the sums may be a flat window's residue: look at the
            # window (rare) so a flat one gets exactly its value and 0, as a two-pass sum would. A
            # flat window followed by an equal value is flat again, so a long flat stretch costs O(1)
            # per row, not O(n).
            if var <= 1e-9 * (s2 * inv + m * m) and (
                    (flat_at == t - 1 and x[t] == x[t - 1]) or _flat(x, t - n + 1, t)):
                flat_at = t
                mean = x[t]
                var = 0.0
            var = max(var, 0.0)
            if mode == 1:
                a[t] = mean
                b[t] = var
            else:
                dev = nbdev * np.sqrt(var)
                a[t] = mean + dev
                b[t] = mean
                c[t] = mean - dev
        start = end


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over the trailing ``n`` rows (NaN for the first n-1).

    One cumulative sum over the series, shifted by its first value: the error of a window's sum is
    the rounding of ~n additions at the size of the running total, ~1e-11 relative for prices.
    """
    n = _period(n)
    x = np.asarray(x, dtype=np.float64)
    size = len(x)
    out = _nan(size)
    if size < n:
        return out
    ref = x[0]
    cum = np.cumsum(x - ref)
    out[n - 1] = cum[n - 1]
    np.subtract(cum[n:], cum[:-n], out=out[n:])
    out[n - 1 :] += n * ref
    return out


def rolling_mean_var(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance over the trailing ``n`` rows (NaN for the first n-1)."""
    n, x = _period(n), _f64(x)
    if len(x) < n:
        return _nan(len(x)), _nan(len(x))
    mean, var = _warm(len(x), n - 1), _warm(len(x), n - 1)
    _moments(x, n, 0.0, 1, mean, var, var)
    return mean, var


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average; TA-Lib SMA (first value at row n-1)."""
    n, x = _period(n), _f64(x)
    if len(x) < n:
        return _nan(len(x))
    out = _warm(len(x), n - 1)
    _moments(x, n, 0.0, 0, out, out, out)
    return out


def bbands(close: np.ndarray, n: int = 20, nbdev: float = 2.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands (upper, middle, lower) over an SMA with population stddev; TA-Lib BBANDS."""
    n, close = _period(n), _f64(close)
    size = len(close)
    if size < n:
        return _nan(size), _nan(size), _nan(size)
    upper, middle, lower = _warm(size, n - 1), _warm(size, n - 1), _warm(size, n - 1)
    _moments(close, n, float(nbdev), 2, upper, middle, lower)
    return upper, middle, lower


# -- recursions ---------------------------------------------------------------------------------
@_jit
def _ema(x: np.ndarray, n: int, out: np.ndarray) -> None:
    # TA-Lib's seed (the plain sum of the first n rows over n) and its update form, term for term.
    k = 2.0 / (n + 1)
    a = 1.0 - k
    prev = 0.0
    for t in range(n):
        prev += x[t]
    prev /= n
    out[n - 1] = prev
    for t in range(n, len(x)):
        prev = k * x[t] + a * prev
        out[t] = prev


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n rows (TA-Lib EMA)."""
    n, x = _period(n), _f64(x)
    if len(x) < n:
        return _nan(len(x))
    out = _warm(len(x), n - 1)
    _ema(x, n, out)
    return out


@_jit
def _rsi(close: np.ndarray, n: int, zero: float, out: np.ndarray) -> None:
    # Gains and losses as max(d, 0) and max(-d, 0): no data-dependent branch on the sign of a move.
    gain = 0.0
    loss = 0.0
    for t in range(1, n + 1):
        d = close[t] - close[t - 1]
        gain += max(d, 0.0)
        loss += max(-d, 0.0)
    gain /= n
    loss /= n
    k = 1.0 / n
    a = (n - 1.0) / n
    for t in range(n, len(close)):
        if t > n:
            d = close[t] - close[t - 1]
            gain = a * gain + k * max(d, 0.0)
            loss = a * loss + k * max(-d, 0.0)
        total = gain + loss
        # TA-Lib outputs 0 when average gain + loss is (near) zero.
        out[t] = 100.0 * (gain / total) if total >= zero else 0.0


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Relative Strength Index with Wilder smoothing; TA-Lib RSI (first value at row n)."""
    n, close = _period(n), _f64(close)
    if len(close) <= n:
        return _nan(len(close))
    out = _warm(len(close), n)
    _rsi(close, n, _TA_ZERO, out)
    return out


@_jit
def _macd(close: np.ndarray, fast: int, slow: int, signal: int,
          line: np.ndarray, sig: np.ndarray, hist: np.ndarray) -> None:
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    af, as_, ag = 1.0 - kf, 1.0 - ks, 1.0 - kg
    start = slow - 1
    first = start + signal - 1
    f = 0.0
    s = 0.0
    for t in range(start + 1):
        s += close[t]
        if t > start - fast:
            f += close[t]
    f /= fast
    s /= slow
    g = f - s  # the signal EMA: first the sum of its seed window, then its value
    for t in range(start + 1, first + 1):
        x = close[t]
        f = kf * x + af * f
        s = ks * x + as_ * s
        g += f - s
    g /= signal
    v = f - s
    line[first] = v
    sig[first] = g
    hist[first] = v - g
    for t in range(first + 1, len(close)):
        x = close[t]
        f = kf * x + af * f
        s = ks * x + as_ * s
        v = f - s
        g = kg * v + ag * g
        line[t] = v
        sig[t] = g
        hist[t] = v - g


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal and histogram exactly as TA-Lib computes them.

    TA-Lib seeds both EMAs at row slow-1 (the fast one with the mean of its last ``fast`` rows there,
    not at row fast-1), seeds the signal with the mean of the line's first ``signal`` values, and
    outputs all three from row slow+signal-2.
    """
    fast, slow, signal, close = _period(fast), _period(slow), _period(signal), _f64(close)
    if fast > slow:
        fast, slow = slow, fast
    size = len(close)
    first = slow + signal - 2
    if size <= first:
        return _nan(size), _nan(size), _nan(size)
    line, sig, hist = _warm(size, first), _warm(size, first), _warm(size, first)
    _macd(close, fast, slow, signal, line, sig, hist)
    return line, sig, hist


@_jit
def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> None:
    prev = 0.0
    for t in range(1, n + 1):
        c = close[t - 1]
        prev += max(high[t] - low[t], abs(high[t] - c), abs(low[t] - c))
    prev /= n
    out[n] = prev
    k = 1.0 / n
    a = (n - 1.0) / n
    for t in range(n + 1, len(close)):
        c = close[t - 1]
        tr = max(high[t] - low[t], abs(high[t] - c), abs(low[t] - c))
        prev = a * prev + k * tr
        out[t] = prev

def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average True Range with Wilder smoothing; TA-Lib ATR (first value at row n, the mean of TR 1..n)."""
    n, high, low, close = _period(n), _f64(high), _f64(low), _f64(close)
    if len(close) <= n:
        return _nan(len(close))
    out = _warm(len(close), n)
    _atr(high, low, close, n, out)
    return out


# -- volume-weighted prices ---------------------------------------------------------------------------
def vwap_rolling(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int
                 ) -> np.ndarray:
    """Volume-weighted typical price (h+l+c)/3 over the trailing ``n`` bars; the typical price when the
    window traded nothing."""
    typical = (np.asarray(high) + low + close) / 3.0
    pv = rolling_sum(typical * volume, n)
    vol = rolling_sum(np.asarray(volume, dtype=np.float64), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(vol > 0, pv / vol, typical)
    out[: n - 1] = np.nan
    return out


def vwap_anchored(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                  group: np.ndarray) -> np.ndarray:
    """VWAP accumulated from the first bar of each ``group`` (e.g. the UTC day number) up to each bar."""
    typical = (np.asarray(high) + low + close) / 3.0
    size = len(typical)
    if size == 0:
        return typical
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    cum_pv = np.cumsum(typical * volume)
    cum_v = np.cumsum(np.asarray(volume, dtype=np.float64))
    lengths = np.diff(np.r_[starts, size])
    base_pv = np.repeat(np.r_[0.0, cum_pv[starts[1:] - 1]], lengths)
    base_v = np.repeat(np.r_[0.0, cum_v[starts[1:] - 1]], lengths)
    pv_day = cum_pv - base_pv
    v_day = cum_v - base_v
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v_day > 0, pv_day / v_day, typical)
