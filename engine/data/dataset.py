"""The dataset every model task shares: bars -> (resample) -> clean -> features -> labels -> samples -> splits.

A pure function of typed inputs (:class:`DatasetBuilder`: the loaded bars' timeframe, :class:`DatasetSettings`
and the cleaner, feature and label components) and the bars handed to :meth:`DatasetBuilder.build`. It reads
no config and no files and prints nothing: a task turns its config into these values, loads the bars and
shows progress through the optional ``progress`` hook. The same inputs always yield the same samples and
splits, which is how ``task=explain`` rebuilds the dataset a model was trained on.

Timing: sample ``i`` is decided at the close of bar ``index[i]``; its features use bars up to that close
and its label is the forward return over the next ``horizon`` bars. The splits are chronological with an
embargo of at least the label horizon between train, validation and test, enforced here whatever the
caller asks for, so no training label reaches into the span that judges the model.

pandas is imported by the functions that use it: the ``task`` config schema includes
:class:`DatasetSettings`, and importing it must stay light (``python -m engine --cfg job``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from engine import timeframes
from engine.data.cleaning import DataCleaner
from engine.data.features import FeatureEngineering, resample_bars
from engine.data.frames import fingerprint
from engine.data.labels import LabelSpec
from engine.data.splits import chronological_split
from engine.data.windows import sequence_windows
from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded
from engine.timeframes import Timeframe

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[str], AbstractContextManager[Any]]
SPAN_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSettings:
    """How bars become samples and splits (the dataset part of ``task.*``, plus the model's window)."""

    bar_size: str | None = None  # resample the loaded bars to this size first; None keeps them
    val_frac: float = bounded(0.15, gt=0.0, lt=0.5)
    test_frac: float = bounded(0.15, gt=0.0, lt=0.5)
    embargo: int | None = bounded(None, ge=0)  # samples dropped between spans; raised to the label horizon
    seq_len: int | None = bounded(None, ge=1)  # windows of seq_len bars per sample (sequence models); None = rows
    min_span_samples: int = bounded(10, ge=1)  # fewer samples in any span is refused, not trained on

    def __post_init__(self) -> None:
        if self.bar_size is not None:
            timeframes.parse(self.bar_size, key="task.bar_size")
        for name in ("val_frac", "test_frac"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"task.{name}", f"must be in (0, 0.5), got {value!r}")
        if self.val_frac + self.test_frac >= 0.8:
            raise ConfigError("task.test_frac", "val_frac + test_frac must leave at least 20% for training")
        if self.embargo is not None and (isinstance(self.embargo, bool) or self.embargo < 0):
            raise ConfigError("task.embargo", f"must be >= 0, got {self.embargo!r}")
        if self.seq_len is not None and self.seq_len < 1:
            raise ConfigError("model.seq_len", f"must be >= 1, got {self.seq_len!r}")
        if self.min_span_samples < 1:
            raise ConfigError("min_span_samples", f"must be >= 1, got {self.min_span_samples!r}")


class Splits(NamedTuple):
    """Sample slices in time order; ``train.stop + embargo <= val.start``, ``val.stop + embargo <= test.start``."""

    train: slice
    val: slice
    test: slice


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples ready for a model. Sample ``i`` is decided at the close of bar ``index[i]``."""

    bars: pd.DataFrame  # cleaned bars at the dataset's bar size (the backtest's prices)
    X: pd.DataFrame | np.ndarray  # 2-D feature frame, or read-only [n, seq_len, features] windows
    y: np.ndarray  # int64 class ids
    index: pd.DatetimeIndex  # per sample: open time of the bar whose close decides it
    feature_names: list[str]
    splits: Splits
    horizon: int
    n_classes: int
    timeframe: Timeframe
    embargo: int
    clean_report: dict[str, float]
    fingerprint: str  # content hash of the bars handed to the builder
    source: str = ""  # where the bars came from, as the caller described it

    @property
    def bar_seconds(self) -> int:
        return self.timeframe.seconds

    def take(self, span: slice) -> pd.DataFrame | np.ndarray:
        """The inputs of a span of samples, without copying."""
        import pandas as pd

        return self.X.iloc[span] if isinstance(self.X, pd.DataFrame) else self.X[span]

    def prices(self, span: slice) -> pd.DataFrame:
        """Open and close of each sample's bar, what the next-bar backtest needs: a signal decided at a
        bar's close is filled at the following bar's open (the backtest does that shift)."""
        return self.bars.loc[self.index[span], ["open", "close"]]

    def describe(self) -> str:
        sizes = " / ".join(f"{name} {s.stop - s.start:,}" for name, s in zip(SPAN_NAMES, self.splits, strict=True))
        return (f"dataset: {len(self.y):,} samples x {len(self.feature_names)} features at {self.timeframe.mt5} "
                f"({sizes}, embargo {self.embargo} bars)")

    def split_report(self) -> dict[str, Any]:
        """The splits as recorded with a run: first/last decision time (``spans``) and the ``[start, stop)``
        sample bounds (``samples``) of each span, so the embargo actually applied can be checked afterwards."""
        named = list(zip(SPAN_NAMES, self.splits, strict=True))
        return {"horizon": self.horizon, "embargo": self.embargo, "bar_seconds": self.bar_seconds,
                "spans": {name: [str(self.index[s.start]), str(self.index[s.stop - 1])] for name, s in named},
                "samples": {name: [s.start, s.stop] for name, s in named}}


@dataclass(frozen=True, eq=False)
class DatasetBuilder:
    """Everything a dataset is made of except the bars. Built before any bar is loaded, so a recipe that
    could only leak or fail (a non-causal cleaner, features on another bar size) is refused first."""

    timeframe: Timeframe  # of the bars that will be handed to build()
    features: FeatureEngineering
    labels: LabelSpec
    settings: DatasetSettings = DatasetSettings()
    cleaner: DataCleaner | None = None

    def __post_init__(self) -> None:
        check_causal(self.cleaner)
        tf = self.bar_timeframe
        if tf.seconds < self.timeframe.seconds:
            raise ConfigError("task.bar_size", f"{tf.mt5} is finer than the loaded {self.timeframe.mt5} bars")
        first = self.features.timeframes[0]
        if timeframes.parse(first, key="features.timeframes") != tf:
            raise ConfigError("features.timeframes", f"starts with {first} but the task trains on {tf.mt5} bars; "
                                                     f"make {tf.pandas} the first feature timeframe "
                                                     "(or set task.bar_size)")

    @property
    def bar_timeframe(self) -> Timeframe:
        """The bar size samples are made at."""
        size = self.settings.bar_size
        return timeframes.parse(size, key="task.bar_size") if size else self.timeframe

    @property
    def embargo(self) -> int:
        """Samples dropped between spans: what was asked for, but never less than the label horizon."""
        return max(int(self.settings.embargo or 0), int(self.labels.horizon))

    def build(self, bars: pd.DataFrame, *, source: str = "", progress: Progress | None = None) -> Dataset:
        """The dataset of ``bars`` (conforming bars at :attr:`timeframe`, oldest first)."""
        step = progress or _no_progress
        data_fp = fingerprint(bars)
        bars, clean_report = self.clean(bars, progress=step)
        with step("features + labels"):
            return self.assemble(bars, self.featurize(bars), clean_report=clean_report, data_fingerprint=data_fp,
                                 source=source)

    # The steps of build(), callable one by one: task=clean and task=features store the first two, and
    # task.features_from hands the stored result to assemble(), which yields the dataset build() would.
    def clean(self, bars: pd.DataFrame, *, progress: Progress | None = None) -> CleanBars:
        """Step 1: ``bars`` (at :attr:`timeframe`) resampled to the bar size and cleaned."""
        return clean_bars(bars, self.timeframe, self.bar_timeframe, self.cleaner, progress=progress)

    def featurize(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Step 2: the feature columns of cleaned bars, on their index (warm-up rows are NaN)."""
        return feature_frame(self.features, bars)

    def recipe(self) -> dict[str, Any]:
        """What steps 1 and 2 compute with, as JSON values: stored steps are used only if theirs is equal."""
        return {"timeframe": self.timeframe.mt5, "bar_timeframe": self.bar_timeframe.mt5,
                "cleaner": settings_of(self.cleaner), "features": settings_of(self.features)}

    def assemble(self, bars: pd.DataFrame, feats: pd.DataFrame, *, clean_report: dict[str, float],
                 data_fingerprint: str, source: str = "") -> Dataset:
        """Step 3: labels, samples and splits of cleaned ``bars`` and their feature columns ``feats``;
        ``data_fingerprint`` is the content hash of the bars step 1 started from."""
        names = [str(c) for c in feats.columns]
        labels = self.labels.make(bars["close"])  # kept apart from the features: it looks forward
        X, y, index = samples(feats, labels.to_numpy(), self.settings.seq_len)
        tf = self.bar_timeframe
        embargo = self.embargo
        splits = Splits(*chronological_split(len(y), self.settings.val_frac, self.settings.test_frac, embargo))
        for name, span in zip(SPAN_NAMES, splits, strict=True):
            if span.stop - span.start < self.settings.min_span_samples:
                raise DataQualityError(f"the {name} span holds {span.stop - span.start} samples; load more bars "
                                       "(smoke mode keeps the last 20,000 base bars) or change task.*_frac")
        return Dataset(bars=bars, X=X, y=y, index=index, feature_names=names, splits=splits,
                       horizon=int(self.labels.horizon), n_classes=int(self.labels.n_classes), timeframe=tf,
                       embargo=embargo, clean_report=clean_report, fingerprint=data_fingerprint,
                       source=source)


class CleanBars(NamedTuple):
    bars: pd.DataFrame
    report: dict[str, float]  # the cleaner's report (empty without a cleaner)


def _no_progress(_name: str) -> AbstractContextManager[Any]:
    return nullcontext()


def check_causal(cleaner: DataCleaner | None) -> None:
    """Refuse a cleaner that judges a bar with later bars: what it keeps would depend on the future."""
    if cleaner is not None and cleaner.enabled and not cleaner.causal:
        # centred windows (and a whole-sample Isolation Forest) decide which bars survive with later bars
        raise ConfigError("cleaner.causal", "the dataset feeds a model, so cleaning must judge each bar with "
                                            "earlier bars only; set cleaner.causal=true (or cleaner=off)")


def clean_bars(bars: pd.DataFrame, base: Timeframe, target: Timeframe, cleaner: DataCleaner | None, *,
               progress: Progress | None = None) -> CleanBars:
    """``bars`` at ``base`` resampled to ``target`` (complete bars only), then cleaned by ``cleaner``."""
    step = progress or _no_progress
    if target != base:
        with step(f"resample {base.mt5} -> {target.mt5}"):
            bars = complete_bars(bars, base, target)
    if cleaner is None:
        return CleanBars(bars, {})
    with step("clean"):
        bars = cleaner.clean_ohlcv(bars)
    return CleanBars(bars, dict(cleaner.report_.as_dict()))


def feature_frame(features: FeatureEngineering, bars: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of ``bars`` in ``features.feature_names_`` order."""
    return features.transform(bars).loc[:, list(features.feature_names_)]


def settings_of(component: Any) -> dict[str, Any] | None:
    """A settings dataclass's constructor fields as JSON values (sequences become lists); None for None."""
    if component is None:
        return None
    out: dict[str, Any] = {}
    for f in fields(component):
        if f.init:
            value = getattr(component, f.name)
            out[f.name] = list(value) if isinstance(value, list | tuple) else value
    return out


def complete_bars(bars: pd.DataFrame, base: Timeframe, target: Timeframe) -> pd.DataFrame:
    """``bars`` resampled from ``base`` to ``target``, without a last bar the data ends inside."""
    import pandas as pd

    if not len(bars):
        return resample_bars(bars, target)
    last_close = bars.index[-1] + pd.Timedelta(seconds=base.seconds)
    out = resample_bars(bars, target)
    if out.index[-1] + pd.Timedelta(seconds=target.seconds) > last_close:
        # its "close" is not the bar's close, so it is no bar yet (and a label reaching it would be the
        # return to some minute inside the bar)
        out = out.iloc[:-1]
    return out


def samples(feats: pd.DataFrame, labels: np.ndarray, seq_len: int | None
            ) -> tuple[pd.DataFrame | np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """(X, y, index) of every sample with complete features and a label: one row each, or windows."""
    import pandas as pd

    complete = feats.notna().all(axis=1).to_numpy()
    labelled = ~np.isnan(labels)
    if seq_len is not None:
        return window_samples(feats, complete, labelled, labels, seq_len)
    keep = np.flatnonzero(complete & labelled)
    if keep.size and keep[-1] - keep[0] + 1 == keep.size:
        X = feats.iloc[keep[0]:keep[-1] + 1]  # the usual contiguous block: no copy
    else:
        X = feats.iloc[keep]
    return X, labels[keep].astype("int64"), pd.DatetimeIndex(feats.index[keep])


def window_samples(feats: pd.DataFrame, complete: np.ndarray, labelled: np.ndarray, labels: np.ndarray,
                   seq_len: int) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Windows of ``seq_len`` consecutive rows, all with complete features, ending on a labelled row.

    Usually that is one contiguous block (warm-up rows at the start, unlabelled rows at the end) and the
    windows stay a view; rows missing in the middle force a copy of the valid windows.
    """
    import pandas as pd

    n = len(feats)
    if n < seq_len:
        raise DataQualityError(f"{n} rows are fewer than model.seq_len={seq_len}; load more bars or shorten the "
                               "window")
    # a window ending at row i is valid when rows i-seq_len+1..i are all complete and row i is labelled
    run = np.convolve(complete.astype("int64"), np.ones(seq_len, dtype="int64"), mode="valid")
    valid = (run == seq_len) & labelled[seq_len - 1:]
    where = np.flatnonzero(valid)
    if where.size == 0:
        raise DataQualityError(f"no window of {seq_len} rows with complete features and a label; load more bars")
    windows = sequence_windows(np.nan_to_num(feats.to_numpy(dtype="float32")), seq_len)
    contiguous = where[-1] - where[0] + 1 == where.size
    X = windows[where[0]:where[-1] + 1] if contiguous else windows[where]
    ends = where + seq_len - 1
    return X, labels[ends].astype("int64"), pd.DatetimeIndex(feats.index[ends])
