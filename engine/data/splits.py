"""Chronological splits with embargo (three-way, and the train/validation holdout) and purged
expanding-window folds. Pure index arithmetic: no data is touched, no I/O."""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError, DataQualityError


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
    """Expanding, time-ordered folds: the ``n`` rows are cut into ``n_folds + 1`` equal blocks (up to
    rounding); fold k validates on block k+1 and trains on every row before it, less the ``embargo`` rows
    right before the validation block (their labels look into it).

    Refuses (DataQualityError) rather than shrink anything, exactly when a block is not longer than the
    embargo (``n // (n_folds + 1) <= embargo``): the first fold would keep no training row.
    """
    if n_folds < 1:
        raise ConfigError("cv", f"needs >= 1 fold; got {n_folds}")
    if embargo < 0:
        raise ConfigError("embargo", f"must be >= 0 rows; got {embargo}")
    if n // (n_folds + 1) <= embargo:
        raise DataQualityError(f"{n} rows are too few for {n_folds} folds with embargo {embargo}; use fewer "
                               "folds (cv), a smaller embargo or more data")
    bounds = np.linspace(0, n, n_folds + 2).astype(int)
    return [(np.arange(int(bounds[k + 1]) - embargo), np.arange(int(bounds[k + 1]), int(bounds[k + 2])))
            for k in range(n_folds)]


def holdout_split(n: int, val_split: float, embargo: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train on the first rows, validate on the last ``val_split`` share (at least one row when the share
    is > 0), with ``embargo`` rows dropped between. Refuses when fewer than 2 training rows would remain."""
    if not 0.0 <= val_split < 1.0:
        raise ConfigError("val_split", f"must be in [0, 1); got {val_split}")
    if embargo < 0:
        raise ConfigError("embargo", f"must be >= 0 rows; got {embargo}")
    n_val = round(n * val_split)
    if val_split > 0 and n_val == 0:
        n_val = 1
    train_stop = n - n_val - (embargo if n_val else 0)
    if train_stop < 2:
        raise DataQualityError(f"{n} samples leave {train_stop} for training after val_split={val_split} and "
                               f"embargo={embargo}; provide more data")
    return np.arange(0, train_stop), np.arange(n - n_val, n)
