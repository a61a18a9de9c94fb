"""Walk-forward folds: the embargo between every training window and the span it trades, and the tiling."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError, DataQualityError
from engine.trading.walkforward import WalkForwardSettings, walk_forward_folds


def test_rolling_folds_by_hand() -> None:
    folds = walk_forward_folds(100, WalkForwardSettings(train_bars=50, retrain_every=20), embargo=5)
    assert [(f.train.start, f.train.stop, f.test.start, f.test.stop) for f in folds] == [
        (0, 50, 55, 75), (20, 70, 75, 95), (40, 90, 95, 100)]


def test_expanding_folds_start_at_zero() -> None:
    folds = walk_forward_folds(100, WalkForwardSettings(window="expanding", train_bars=50, retrain_every=20), 5)
    assert [(f.train.start, f.train.stop) for f in folds] == [(0, 50), (0, 70), (0, 90)]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(60, 5000), train=st.integers(50, 3000), every=st.integers(1, 2000), horizon=st.integers(0, 60),
       expanding=st.booleans())
def test_no_training_label_reaches_the_span_it_trades(n: int, train: int, every: int, horizon: int,
                                                      expanding: bool) -> None:
    walk = WalkForwardSettings(window="expanding" if expanding else "rolling", train_bars=train, retrain_every=every)
    embargo = horizon  # the task raises the embargo to the label horizon (DatasetBuilder.embargo)
    if n <= train + embargo:
        with pytest.raises(DataQualityError, match="walk-forward needs more than"):
            walk_forward_folds(n, walk, embargo)
        return
    folds = walk_forward_folds(n, walk, embargo)
    assert folds[0].test.start == train + embargo
    assert folds[-1].test.stop == n
    for before, after in itertools.pairwise(folds):
        assert before.test.stop == after.test.start  # contiguous, no overlap: the predictions stitch
    for fold in folds:
        assert fold.train.stop + embargo == fold.test.start
        # the last training sample's label looks `horizon` bars ahead: it ends before the first traded bar
        assert fold.train.stop - 1 + horizon < fold.test.start
        assert 0 < fold.test.stop - fold.test.start <= every
        length = fold.train.stop - fold.train.start
        assert length == train if not expanding else (fold.train.start == 0 and length >= train)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"task\.walk_forward\.window"):
        WalkForwardSettings(window="sliding")
    with pytest.raises(ConfigError, match=r"task\.walk_forward\.retrain_every"):
        WalkForwardSettings(retrain_every=0)
