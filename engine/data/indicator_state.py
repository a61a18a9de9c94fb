"""One step of each indicator at a time: the states behind :mod:`engine.data.incremental`.

Each class takes one bar's values and returns the indicator's value at that bar, equal to what the batch
kernel of :mod:`engine.data.indicators` computes for the same row of the same series. The recursions (EMA,
RSI, MACD, ATR) repeat the batch kernels' operations in the same order from the same seed, so their values
are the same floats; rolling statistics are evaluated on the trailing window with the batch's own kernels,
equal to the batch's running sums up to their rounding (the batch re-sums from scratch every block, as
these do on every bar).

Inputs are plain Python floats; warm-up rows return NaN exactly where the batch kernels do.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NAN = math.nan
_TA_ZERO = 1e-8  # as indicators._TA_ZERO: TA-Lib's RSI outputs 0 when gains + losses are (near) zero


class Ring:
    """The last ``capacity`` values, readable as one contiguous array (each value is stored twice, at ``i``
    and ``i + capacity``, so the trailing window is always a plain slice: no copy, no wrap-around)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(int(capacity), 1)
        self._data = np.full(2 * self.capacity, np.nan)
        self._next = 0  # slot of the next value
        self.count = 0  # values pushed so far

    def push(self, value: float) -> None:
        i = self._next
        self._data[i] = value
        self._data[i + self.capacity] = value
        self._next = (i + 1) % self.capacity
        self.count += 1

    def last(self, n: int) -> np.ndarray:
        """The trailing ``n`` values, oldest first (a view; ``n <= capacity`` and ``n <= count``)."""
        end = self._next + self.capacity
        return self._data[end - n:end]

    def back(self, k: int) -> float:
        """The value pushed ``k`` pushes ago (0 = the latest)."""
        return float(self._data[self._next + self.capacity - 1 - k])


class Ema:
    """TA-Lib EMA: the mean of the first ``n`` values, then ``k*x + (1-k)*prev`` (indicators._ema)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.k = 2.0 / (self.n + 1)
        self.a = 1.0 - self.k
        self.count = 0
        self.value = NAN

    def update(self, x: float) -> float:
        self.count += 1
        if self.count < self.n:
            self.value = (0.0 if self.count == 1 else self.value) + x
            return NAN
        if self.count == self.n:
            self.value = ((0.0 if self.n == 1 else self.value) + x) / self.n
            return self.value
        self.value = self.k * x + self.a * self.value
        return self.value


class Rsi:
    """Wilder RSI (indicators._rsi): mean gain and loss of the first ``n`` moves, then Wilder smoothing."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.k = 1.0 / self.n
        self.a = (self.n - 1.0) / self.n
        self.count = 0
        self.prev = NAN
        self.gain = 0.0
        self.loss = 0.0

    def update(self, close: float) -> float:
        t = self.count
        self.count += 1
        prev, self.prev = self.prev, close
        if t == 0:
            return NAN
        d = close - prev
        if t <= self.n:
            self.gain += max(d, 0.0)
            self.loss += max(-d, 0.0)
            if t < self.n:
                return NAN
            self.gain /= self.n
            self.loss /= self.n
        else:
            self.gain = self.a * self.gain + self.k * max(d, 0.0)
            self.loss = self.a * self.loss + self.k * max(-d, 0.0)
        total = self.gain + self.loss
        return 100.0 * (self.gain / total) if total >= _TA_ZERO else 0.0


class Macd:
    """TA-Lib MACD (indicators._macd): both EMAs seeded at row slow-1, the signal seeded with the mean of
    the line's first ``signal`` values; (line, signal, histogram) from row slow+signal-2."""

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        fast, slow = (slow, fast) if fast > slow else (fast, slow)
        self.fast, self.slow, self.signal = int(fast), int(slow), int(signal)
        self.kf, self.ks, self.kg = 2.0 / (self.fast + 1), 2.0 / (self.slow + 1), 2.0 / (self.signal + 1)
        self.af, self.as_, self.ag = 1.0 - self.kf, 1.0 - self.ks, 1.0 - self.kg
        self.start = self.slow - 1
        self.first = self.start + self.signal - 1
        self.count = 0
        self.f = self.s = self.g = 0.0

    def update(self, x: float) -> tuple[float, float, float]:
        t = self.count
        self.count += 1
        if t <= self.start:
            self.s += x
            if t > self.start - self.fast:
                self.f += x
            if t < self.start:
                return NAN, NAN, NAN
            self.f /= self.fast
            self.s /= self.slow
            self.g = self.f - self.s
        elif t <= self.first:
            self.f = self.kf * x + self.af * self.f
            self.s = self.ks * x + self.as_ * self.s
            self.g += self.f - self.s
        else:
            self.f = self.kf * x + self.af * self.f
            self.s = self.ks * x + self.as_ * self.s
            v = self.f - self.s
            self.g = self.kg * v + self.ag * self.g
            return v, self.g, v - self.g
        if t < self.first:
            return NAN, NAN, NAN
        self.g /= self.signal
        v = self.f - self.s
        return v, self.g, v - self.g


class Atr:
    """Wilder ATR (indicators._atr): the mean true range of bars 1..n, then Wilder smoothing."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.k = 1.0 / self.n
        self.a = (self.n - 1.0) / self.n
        self.count = 0
        self.prev_close = NAN
        self.value = 0.0

    def update(self, high: float, low: float, close: float) -> float:
        t = self.count
        self.count += 1
        c, self.prev_close = self.prev_close, close
        if t == 0:
            return NAN
        tr = max(high - low, abs(high - c), abs(low - c))
        if t <= self.n:
            self.value += tr
            if t < self.n:
                return NAN
            self.value /= self.n
            return self.value
        self.value = self.a * self.value + self.k * tr
        return self.value


@njit(cache=True, nogil=True)
def _moments(x: np.ndarray, n: int) -> tuple[float, float]:
    # The batch kernel's fresh sums at a block start (indicators._moments): deviations from the window's
    # mean, so 40,000-dollar prices never lose the variance to cancellation; a flat window is exactly flat.
    size = len(x)
    ref = 0.0
    for j in range(size - n, size):
        ref += x[j]
    ref *= 1.0 / n
    s1 = 0.0
    s2 = 0.0
    for j in range(size - n, size):
        d = x[j] - ref
        s1 += d
        s2 += d * d
    m = s1 * (1.0 / n)
    var = s2 * (1.0 / n) - m * m
    if var <= 1e-9 * (s2 * (1.0 / n) + m * m):
        flat = True
        for j in range(size - n, size - 1):
            if x[j] != x[size - 1]:
                flat = False
                break
        if flat:
            return x[size - 1], 0.0
    return ref + m, max(var, 0.0)


@njit(cache=True, nogil=True)
def _tail_sum(x: np.ndarray, n: int) -> float:
    total = 0.0
    for j in range(len(x) - n, len(x)):
        total += x[j]
    return total


def mean_var(window: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and population variance of the trailing ``n`` values (as the batch's moments kernel computes
    them at a block start, flat windows included); NaN while fewer than ``n`` are known."""
    if len(window) < n:
        return NAN, NAN
    return _moments(window, n)


def window_sum(window: np.ndarray, n: int) -> float:
    """Sum of the trailing ``n`` values; NaN while fewer are known."""
    return _tail_sum(window, n) if len(window) >= n else NAN


__all__ = ["Atr", "Ema", "Macd", "Ring", "Rsi", "mean_var", "window_sum"]
