"""Walk-forward folds: retrain every N samples on a rolling or expanding window, trade the next N.

Sample ``i`` is decided at bar ``i``'s close and its label looks ``horizon`` bars ahead, so a training
window that ends at sample ``e`` holds labels that reach bar ``e - 1 + horizon``. Leaving ``embargo >=
horizon`` samples out between every training window and the span it trades keeps each fold's labels out
of the bars it is judged on. The traded spans are contiguous and never overlap, so the folds'
out-of-sample predictions stitch into one series that starts at the first fold's first sample.

    fold k:  [ train (rolling: train_bars; expanding: from 0) ][ embargo ][ test: retrain_every ]
    fold k+1:             ...       the window moves by retrain_every ...  [ test ]
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded, check, choice

WINDOWS = ("rolling", "expanding")


@dataclass(frozen=True)
class WalkForwardSettings:
    """Walk-forward retraining (``task.walk_forward.*``). Sizes count samples (bars of the dataset)."""

    enabled: bool = False
    window: str = choice("rolling", WINDOWS)  # rolling: the last train_bars; expanding: everything so far
    train_bars: int = bounded(20_000, ge=50)  # rolling window length; the first window when expanding
    retrain_every: int = bounded(5_000, ge=1)  # samples traded by each model before the next retrain

    def __post_init__(self) -> None:
        check(self, "task.walk_forward")


@dataclass(frozen=True)
class Fold:
    number: int
    train: slice
    test: slice


def walk_forward_folds(n_samples: int, settings: WalkForwardSettings, embargo: int) -> list[Fold]:
    """Every fold over ``n_samples`` samples; ``train.stop + embargo == test.start`` in each, the test spans
    tile ``[first test start, n_samples)``."""
    if embargo < 0:
        raise ConfigError("task.embargo", f"must be >= 0, got {embargo}")
    first = settings.train_bars + embargo
    if n_samples <= first:
        raise DataQualityError(f"walk-forward needs more than train_bars + embargo = {first} samples before the "
                               f"first traded one; the dataset has {n_samples}. Load a longer span or lower "
                               "task.walk_forward.train_bars")
    folds = []
    for number, start in enumerate(range(first, n_samples, settings.retrain_every)):
        end = start - embargo
        begin = 0 if settings.window == "expanding" else end - settings.train_bars
        folds.append(Fold(number, slice(begin, end), slice(start, min(start + settings.retrain_every, n_samples))))
    return folds
