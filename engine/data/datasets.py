"""Chronological splits with embargo, purged expanding-window folds, and sequence windows as views."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.errors import DataQualityError


def chronological_split(n: int, val_frac: float, test_frac: float, embargo: int) -> tuple[slice, slice, slice]:
    """Train, validation and test slices in time order with ``embargo`` rows dropped between parts.

    Use an embargo of at least the label horizon, so no training label looks into validation rows.
    With ``val_frac == 0`` the validation slice is empty and one embargo separates train from test.
    """
    if not 0.0 <= val_frac < 1.0 or not 0.0 < test_frac < 1.0 or val_frac + test_frac >= 1.0:
        raise DataQualityError(f"split fractions val={val_frac}, test={test_frac} must be in [0, 1) "
                               "with test > 0 and val + test < 1")
    if embargo < 0:
        raise DataQualityError(f"embargo must be >= 0 rows, got {embargo}")
    n_test = max(1, round(n * test_frac))
    n_val = round(n * val_frac)
    if val_frac > 0:
        n_val = max(1, n_val)
    test = slice(n - n_test, n)
    if n_val:
        val = slice(test.start - embargo - n_val, test.start - embargo)
        train_end = val.start - embargo
    else:
        train_end = test.start - embargo
        val = slice(train_end + embargo, train_end + embargo)
    if train_end < 1:
        raise DataQualityError(f"{n} rows leave no training rows after val={n_val}, test={n_test} and "
                               f"embargo={embargo}; use more data or smaller fractions")
    return slice(0, train_end), val, test


def purged_time_folds(n: int, n_folds: int, embargo: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds: fold k validates on chunk k+1 and trains on all rows before it, less
    ``embargo`` rows next to the validation chunk."""
    if n_folds < 1:
        raise DataQualityError(f"n_folds must be >= 1, got {n_folds}")
    if embargo < 0:
        raise DataQualityError(f"embargo must be >= 0 rows, got {embargo}")
    bounds = np.linspace(0, n, n_folds + 2).astype(int)
    folds = []
    for k in range(n_folds):
        val_start, val_end = int(bounds[k + 1]), int(bounds[k + 2])
        train_end = val_start - embargo
        if train_end < 1 or val_end <= val_start:
            raise DataQualityError(f"{n} rows are too few for {n_folds} folds with embargo {embargo}")
        folds.append((np.arange(train_end), np.arange(val_start, val_end)))
    return folds


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
