"""Sequence windows are zero-copy views with targets aligned to each window's last row."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from engine.data.windows import sequence_windows, window_targets
from engine.errors import DataQualityError


def test_sequence_windows_are_views() -> None:
    X = np.arange(2000 * 3, dtype=np.float32).reshape(2000, 3)
    W = sequence_windows(X, 64)
    assert W.shape == (2000 - 64 + 1, 64, 3)
    assert np.shares_memory(W, X) and not W.flags.writeable
    np.testing.assert_array_equal(W[10], X[10:74])
    y = np.arange(2000)
    assert window_targets(y, 64)[10] == 73  # the label of the window's last row
    with pytest.raises(DataQualityError):
        sequence_windows(X, 0)
    with pytest.raises(DataQualityError):
        sequence_windows(X[:, 0], 4)


def test_windows_memory_is_bounded() -> None:
    X = np.random.default_rng(0).normal(size=(100_000, 40)).astype(np.float32)
    tracemalloc.start()
    try:
        W = sequence_windows(X, 64)
        batch = np.ascontiguousarray(W[np.arange(0, 256)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.shape == (256, 64, 40)
    assert peak < 0.2 * X.nbytes  # only the batch was materialised
