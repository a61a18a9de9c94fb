"""Chronological splits with embargo, purged expanding folds and the holdout: ordered in time, embargoed,
and refused only when the data is too short."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.splits import chronological_split, holdout_split, purged_time_folds
from engine.errors import ConfigError, DataQualityError


@given(n=st.integers(50, 100_000), val=st.floats(0.0, 0.4), test=st.floats(0.01, 0.4), embargo=st.integers(0, 20))
def test_chronological_split_properties(n: int, val: float, test: float, embargo: int) -> None:
    try:
        train, va, te = chronological_split(n, val, test, embargo)
    except DataQualityError:
        # Only when the parts and embargoes leave (almost) nothing to train on.
        assert n * (1 - val - test) - 2 * embargo < 3
        return
    assert train.start == 0 and te.stop == n and train.stop > 0
    assert train.stop <= va.start <= va.stop <= te.start
    if va.stop > va.start:
        assert va.start - train.stop == embargo and te.start - va.stop == embargo
    else:
        assert te.start - train.stop == embargo
    assert abs((te.stop - te.start) - n * test) <= 1


def test_split_errors() -> None:
    with pytest.raises(DataQualityError):
        chronological_split(10, 0.5, 0.5, 0)
    with pytest.raises(DataQualityError, match="no training rows"):
        chronological_split(20, 0.2, 0.2, 10)


def check_folds(folds_fn, n: int, k: int, embargo: int) -> None:
    """The purged-fold properties. A refusal passes only when it is justified: every one of the k+1
    blocks would be no longer than the embargo, so the first fold keeps no training row."""
    try:
        folds = folds_fn(n, k, embargo)
    except DataQualityError:
        assert n // (k + 1) <= embargo, f"refused {n} rows, {k} folds, embargo {embargo} though they split"
        return
    assert len(folds) == k
    last_val_end = -1
    for train, val in folds:
        assert len(train) >= 1 and len(val) >= 1
        assert np.all(np.diff(train) == 1) and np.all(np.diff(val) == 1)
        assert train[0] == 0  # expanding window
        # no validation index within `embargo` bars of a training index, and never training after validation
        assert val.min() - train.max() > embargo
        assert val.min() > last_val_end  # validation blocks move forward in time without overlap
        last_val_end = val.max()
    assert last_val_end == n - 1


def check_holdout(holdout_fn, n: int, share: float, embargo: int) -> None:
    """The holdout properties. A refusal passes only when fewer than 2 training rows would remain after
    the validation share (at least one row) and the embargo."""
    n_val = max(1, round(n * share))
    try:
        train, val = holdout_fn(n, share, embargo)
    except DataQualityError:
        assert n - n_val - embargo < 2, f"refused {n} rows, share {share}, embargo {embargo} though they split"
        return
    assert val.max() == n - 1 and len(val) == n_val
    assert train[0] == 0 and np.all(np.diff(train) == 1) and np.all(np.diff(val) == 1)
    assert val.min() - train.max() == embargo + 1


@given(n=st.integers(2, 5000), k=st.integers(1, 6), embargo=st.integers(0, 30))
@settings(max_examples=300, deadline=None)
def test_purged_folds_are_time_ordered_and_refused_only_when_too_short(n: int, k: int, embargo: int) -> None:
    check_folds(purged_time_folds, n, k, embargo)


@given(n=st.integers(2, 2000), share=st.floats(0.05, 0.5), embargo=st.integers(0, 5))
@settings(max_examples=200, deadline=None)
def test_holdout_takes_the_last_part_and_refuses_only_when_too_short(n: int, share: float, embargo: int) -> None:
    check_holdout(holdout_split, n, share, embargo)


def _always_refuses(*args: object) -> object:
    raise DataQualityError("planted: refuses everything")


@pytest.mark.parametrize(("check", "args"), [(check_folds, (5000, 3, 5)), (check_holdout, (2000, 0.2, 5))])
def test_the_split_properties_fail_an_implementation_that_always_refuses(check, args) -> None:
    with pytest.raises(AssertionError, match="though they split"):
        check(_always_refuses, *args)


def test_split_arguments_out_of_range_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cv"):
        purged_time_folds(100, 0, 0)
    with pytest.raises(ConfigError, match="val_split"):
        holdout_split(100, 1.0, 0)
    for bad in (lambda: purged_time_folds(100, 2, -1), lambda: holdout_split(100, 0.2, -1)):
        with pytest.raises(ConfigError, match="embargo"):
            bad()
