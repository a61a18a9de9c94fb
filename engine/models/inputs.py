"""Input checks shared by every family: shapes, dtypes, finiteness, labels, and the training feature set.

Each problem is a DataQualityError that names what is wrong and how to fix it; nothing is coerced
silently (a NaN, a float label or a column in another order never reaches a model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import DataQualityError


def as_samples(X: Any, feature_names: Sequence[str] | None, *, model_type: str, sequence: bool,
               dtype: str) -> tuple[np.ndarray, list[str] | None]:
    """``X`` as a finite ``dtype`` array ([n, features] or windows [n, seq, features]) and its feature
    names when known (a frame's columns or ``feature_names``)."""
    if sequence:
        arr, names = _windows(X, feature_names, model_type)
    else:
        arr, names = _rows(X, feature_names, model_type)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataQualityError(f"X must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if arr.shape[0] == 0:
        raise DataQualityError("X has no rows")
    n_feat = arr.shape[-1]
    if names is not None and len(names) != n_feat:
        raise DataQualityError(f"{len(names)} feature names for {n_feat} features in X")
    if not np.isfinite(arr).all():
        bad_mask = ~np.isfinite(arr.reshape(-1, n_feat))
        cols = names or [f"#{i}" for i in range(n_feat)]
        counts = {cols[i]: int(c) for i, c in enumerate(bad_mask.sum(axis=0)) if c}
        raise DataQualityError(f"X holds NaN/inf values in {counts} (feature: count); drop warm-up rows or "
                               "impute before fit/predict")
    return arr, names


def _windows(X: Any, feature_names: Sequence[str] | None, model_type: str) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(X, pd.DataFrame | pd.Series):
        raise DataQualityError(f"{model_type} takes windows as an array [n, seq, features]; got a "
                               f"{type(X).__name__}. Build windows with engine.data.windows and pass feature_names=")
    arr = np.asarray(X)
    if arr.ndim != 3:
        raise DataQualityError(f"{model_type} needs X of shape [n, seq, features]; got shape {arr.shape}")
    return arr, list(feature_names) if feature_names is not None else None


def _rows(X: Any, feature_names: Sequence[str] | None, model_type: str) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        bad = [c for c, dt in X.dtypes.items() if not (pd.api.types.is_numeric_dtype(dt)
                                                       or pd.api.types.is_bool_dtype(dt))]
        if bad:
            raise DataQualityError(f"X columns {bad} are not numeric (dtypes "
                                   f"{[str(X[c].dtype) for c in bad]}); encode or drop them before fit/predict")
        if feature_names is not None and list(feature_names) != cols:
            raise DataQualityError("feature_names= disagrees with the frame's columns; pass one or the other")
        arr, names = X.to_numpy(dtype="float64", na_value=np.nan), cols
    else:
        arr = np.asarray(X)
        names = list(feature_names) if feature_names is not None else None
    if arr.ndim != 2:
        raise DataQualityError(f"{model_type} needs 2-D X [n, features]; got shape {arr.shape}. "
                               "(Windows [n, seq, f] are for lstm, transformer and cnn1d.)")
    return arr, names


def check_like_training(arr: np.ndarray, names: list[str] | None, *, trained_on: list[str],
                        seq_len: int | None) -> None:
    """Refuse features (or a window length) other than the ones the model was fitted on."""
    if names is not None and names != trained_on:
        missing = [c for c in trained_on if c not in names]
        extra = [c for c in names if c not in trained_on]
        if missing or extra:
            raise DataQualityError(f"features differ from the model's: missing {missing}, extra {extra}; "
                                   "compute the same feature set the model was trained on")
        raise DataQualityError(f"features are in a different order than the model's {trained_on}; "
                               "reorder with X[pipeline.feature_names_]")
    if arr.shape[-1] != len(trained_on):
        raise DataQualityError(f"X has {arr.shape[-1]} features; the model was trained on {len(trained_on)}: "
                               f"{trained_on}")
    if seq_len is not None and arr.shape[1] != seq_len:
        raise DataQualityError(f"windows of {arr.shape[1]} steps; the model was trained on {seq_len}")


def as_labels(y: Any, n: int, output_dim: int) -> np.ndarray:
    """``y`` as int64 class ids 0..output_dim-1, one per sample."""
    arr = y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataQualityError(f"y must be 1-D class ids; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataQualityError(f"X has {n} samples but y has {arr.shape[0]}; align them on the same index")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise DataQualityError(f"y must hold integer class ids 0..{output_dim - 1}; got dtype {arr.dtype}. "
                               "Drop unlabelled rows (NaN) and cast with y.astype('int64')")
    arr = arr.astype("int64")
    outside = sorted(set(np.unique(arr).tolist()) - set(range(output_dim)))
    if outside:
        raise DataQualityError(f"y holds class ids {outside} outside 0..{output_dim - 1}; map labels to "
                               "0-based ids (e.g. -1/0/1 -> 0/1/2) or raise output_dim")
    return arr
