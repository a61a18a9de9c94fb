"""Vectorised indicator kernels on float64 numpy arrays, equal to TA-Lib's definitions and seeding.

Every kernel returns an array as long as its input with NaN during warm-up (TA-Lib's lookback), and
every value at row t depends only on rows <= t (recursions run forward from a seed placed at a fixed
row offset from the start, rolling windows look back). Recursions use ``scipy.signal.lfilter`` (a C
loop); rolling sums use cumulative sums that restart every block so rounding error stays at the size
of one block, not of the whole series (TA-Lib's running sums drift on long series, ours do not).

Inputs must be free of NaN: one NaN would poison every later value of a recursion.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter, lfiltic

_BLOCK = 1024
# TA-Lib treats |x| < 1e-8 as zero (TA_IS_ZERO) when dividing in RSI.
_TA_ZERO = 1e-8


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _window_sums(cum: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the trailing ``n`` rows from per-block cumulative sums ``cum`` (blocks, width).

    Returns the sums and, for windows that start in the previous block, the part that lies there
    (``tail``, zeros elsewhere) so callers can re-reference it.
    """
    width = cum.shape[1]
    out = np.empty_like(cum)
    out[:, n:] = cum[:, n:] - cum[:, :-n]
    out[:, n - 1] = cum[:, n - 1]
    tail = np.zeros((cum.shape[0], n - 1))
    if n > 1:
        # Window ending at column j < n-1 of block k: columns 0..j of block k plus the last n-1-j of k-1.
        tail[1:] = cum[:-1, width - 1 : width] - cum[:-1, width - n : width - 1]
        out[1:, : n - 1] = cum[1:, : n - 1] + tail[1:]
        out[0, : n - 1] = np.nan
    return out, tail


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over the trailing ``n`` rows (NaN for the first n-1).

    One cumulative sum over the series, shifted by its first value: the error of a window's sum is
    the rounding of ~n additions at the size of the running total, ~1e-11 relative for prices.
    """
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
    """Mean and population variance over the trailing ``n`` rows (NaN for the first n-1).

    Each block is shifted by its first value before summing squares, so the variance of a window
    of 40,000-dollar prices is not the difference of two numbers near 1e15.
    """
    x = np.asarray(x, dtype=np.float64)
    size = len(x)
    if size < n:
        return _nan(size), _nan(size)
    width = max(_BLOCK, n)
    nb, full = -(-size // width), size // width
    ref = np.empty((nb, 1))
    ref[:full, 0] = x[: full * width : width]
    dev = np.empty((nb, width))
    np.subtract(x[: full * width].reshape(full, width), ref[:full], out=dev[:full])
    if full < nb:
        ref[full, 0] = x[full * width]
        rest = size - full * width
        dev[full, :rest] = x[full * width :] - ref[full, 0]
        dev[full, rest:] = dev[full, rest - 1]
    s1, tail1 = _window_sums(np.cumsum(dev, axis=1), n)
    np.multiply(dev, dev, out=dev)
    s2, _ = _window_sums(np.cumsum(dev, axis=1, out=dev), n)
    if n > 1 and nb > 1:
        # The part of a window in block k-1 was summed against ref[k-1]; move it onto ref[k].
        delta = ref[:-1] - ref[1:]
        m_tail = np.arange(n - 1, 0, -1, dtype=np.float64)
        s2[1:, : n - 1] += 2.0 * delta * tail1[1:] + m_tail * delta * delta
        s1[1:, : n - 1] += m_tail * delta
    s1 /= n
    s2 /= n
    s2 -= s1 * s1
    np.maximum(s2, 0.0, out=s2)
    s1 += ref
    return s1.ravel()[:size], s2.ravel()[:size]


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average; TA-Lib SMA (first value at row n-1)."""
    out = rolling_sum(x, n)
    out /= n
    return out


def _seeded_filter(u: np.ndarray, k: float, start: int, seed: float) -> np.ndarray:
    """y[t] = y[t-1] + k (u[t] - y[t-1]) for t > start, from y[start] = seed; NaN before ``start``.

    ``u`` is overwritten: zeros before ``start`` and an input at ``start`` that yields the seed let one
    lfilter pass run over the full length, with no state hand-over and no copy of its output.
    """
    u[:start] = 0.0
    u[start] = seed / k
    y = lfilter([k], [1.0, k - 1.0], u)
    y[:start] = np.nan
    return y


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n rows (TA-Lib EMA)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < n:
        return _nan(len(x))
    return _seeded_filter(x.copy(), 2.0 / (n + 1), n - 1, float(np.mean(x[:n])))


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Relative Strength Index with Wilder smoothing; TA-Lib RSI (first value at row n)."""
    close = np.asarray(close, dtype=np.float64)
    size = len(close)
    if size <= n:
        return _nan(size)
    diff = np.empty(size)
    diff[0] = 0.0
    np.subtract(close[1:], close[:-1], out=diff[1:])
    gain = np.maximum(diff, 0.0)
    loss = np.subtract(gain, diff, out=diff)  # max(-d, 0) = max(d, 0) - d, exactly
    avg_gain = _seeded_filter(gain, 1.0 / n, n, float(np.mean(gain[1 : n + 1])))
    total = _seeded_filter(loss, 1.0 / n, n, float(np.mean(loss[1 : n + 1])))
    total += avg_gain
    flat = total < _TA_ZERO  # TA-Lib outputs 0 when average gain + loss is (near) zero
    avg_gain *= 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        avg_gain /= total
    avg_gain[flat] = 0.0
    return avg_gain


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line, signal and histogram exactly as TA-Lib computes them.

    TA-Lib seeds both EMAs at row slow-1 (the fast one with the mean of its last ``fast`` rows there,
    not at row fast-1) and outputs from row slow+signal-2. The line is one second-order filter
    (the difference of two first-order ones), which saves a pass over the data.
    """
    close = np.asarray(close, dtype=np.float64)
    if fast > slow:
        fast, slow = slow, fast
    size = len(close)
    start = slow - 1
    line = _nan(size)
    first_out = start + signal - 1
    if size <= first_out:
        return line, _nan(size), _nan(size)
    kf, ks = 2.0 / (fast + 1), 2.0 / (slow + 1)
    af, as_ = 1.0 - kf, 1.0 - ks
    f0 = float(np.mean(close[start - fast + 1 : start + 1]))
    s0 = float(np.mean(close[: start + 1]))
    line[start] = f0 - s0
    rest = close[start + 1 :]
    if fast == slow:
        line[start + 1 :] = 0.0
    elif len(rest):
        b = [kf - ks, -(kf * as_ - ks * af)]
        a = [1.0, -(af + as_), af * as_]
        # A history consistent with both EMAs' states at `start` gives the filter's initial state.
        x0 = close[start]
        f_prev, s_prev = (f0 - kf * x0) / af, (s0 - ks * x0) / as_
        zi = lfiltic(b, a, y=[f0 - s0, f_prev - s_prev], x=[x0])
        line[start + 1 :], _ = lfilter(b, a, rest, zi=zi)
    sig = _seeded_filter(line.copy(), 2.0 / (signal + 1), first_out,
                         float(np.mean(line[start : first_out + 1])))
    line[:first_out] = np.nan
    return line, sig, line - sig


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TA-Lib TRANGE: max(high-low, |high-prev close|, |low-prev close|); NaN on row 0."""
    out = _nan(len(close))
    if len(close) < 2:
        return out
    prev = close[:-1]
    tr = high[1:] - low[1:]
    np.maximum(tr, np.abs(high[1:] - prev), out=tr)
    np.maximum(tr, np.abs(low[1:] - prev), out=tr)
    out[1:] = tr
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average True Range with Wilder smoothing; TA-Lib ATR (first value at row n, the mean of TR 1..n)."""
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    size = len(close)
    if size <= n:
        return _nan(size)
    tr = np.empty(size)
    tr[0] = 0.0
    body = tr[1:]
    np.subtract(high[1:], low[1:], out=body)
    gap = np.subtract(high[1:], close[:-1])
    np.abs(gap, out=gap)
    np.maximum(body, gap, out=body)
    np.subtract(low[1:], close[:-1], out=gap)
    np.abs(gap, out=gap)
    np.maximum(body, gap, out=body)
    return _seeded_filter(tr, 1.0 / n, n, float(np.mean(tr[1 : n + 1])))


def bbands(close: np.ndarray, n: int = 20, nbdev: float = 2.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands (upper, middle, lower) over an SMA with population stddev; TA-Lib BBANDS."""
    middle, var = rolling_mean_var(close, n)
    width = nbdev * np.sqrt(var)
    return middle + width, middle, middle - width


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
