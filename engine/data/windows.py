"""Sequence windows over a feature matrix, as read-only views (no copy), and their aligned targets.
Pure: views, no I/O."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.errors import DataQualityError


def sequence_windows(X: np.ndarray, seq_len: int) -> np.ndarray:
    """Read-only view [n - seq_len + 1, seq_len, features]; window i ends at row i + seq_len - 1, so its
    label is ``y[i + seq_len - 1]`` (see :func:`window_targets`). No data is copied."""
    if X.ndim != 2:
        raise DataQualityError(f"X must be 2-D [rows, features], got shape {X.shape}")
    if not 1 <= seq_len <= X.shape[0]:
        raise DataQualityError(f"seq_len {seq_len} must be between 1 and the number of rows {X.shape[0]}")
    return sliding_window_view(X, seq_len, axis=0).transpose(0, 2, 1)


def window_targets(y: np.ndarray, seq_len: int) -> np.ndarray:
    """Targets aligned with :func:`sequence_windows`: the label of each window's last row (a view)."""
    return y[seq_len - 1 :]
