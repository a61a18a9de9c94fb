"""Forward-return labels. They look ahead by design, so they are made apart from features and never
joined into a feature matrix: the caller aligns them by index and drops the last ``horizon`` rows.

numpy and pandas are imported where the labels are computed: the ``labels`` config schema is generated from
:class:`LabelSpec`, and importing it must stay light (``python -m engine --cfg job``)."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.fields import bounded, check, choice

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("binary", "ternary")


def forward_return_labels(close: pd.Series, horizon: int, kind: str = "binary", dead_band: float = 0.0
                          ) -> pd.Series:
    """Class of the return from close[t] to close[t+horizon].

    binary: 1 if the return > dead_band else 0. ternary: 0 (down, < -dead_band), 1 (flat), 2 (up,
    > dead_band). The last ``horizon`` rows, and rows whose close or future close is NaN, are NaN.
    """
    import numpy as np
    import pandas as pd

    LabelSpec(horizon=horizon, kind=kind, dead_band=dead_band)  # validates the arguments
    values = close.to_numpy(dtype=np.float64)
    size = len(values)
    fwd = np.full(size, np.nan)
    if size > horizon:
        fwd[:-horizon] = values[horizon:] / values[:-horizon] - 1.0
    if kind == "binary":
        label = (fwd > dead_band).astype(np.float64)
    else:
        label = np.where(fwd > dead_band, 2.0, np.where(fwd < -dead_band, 0.0, 1.0))
    label[np.isnan(fwd)] = np.nan
    return pd.Series(label, index=close.index, name=f"label_{kind}_h{horizon}")


@dataclass(frozen=True)
class LabelSpec:
    """What to predict: the class of the forward return over ``horizon`` bars."""

    horizon: int = bounded(5, ge=1)
    kind: str = choice("binary", KINDS)
    dead_band: float = bounded(0.0, ge=0.0)

    def __post_init__(self) -> None:
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, Integral):
            raise ConfigError("labels.horizon", f"must be an integer >= 1, got {self.horizon!r}")
        check(self, "labels")

    @property
    def n_classes(self) -> int:
        return 2 if self.kind == "binary" else 3

    def make(self, close: pd.Series) -> pd.Series:
        """Labels for every row of ``close`` (NaN where the horizon runs past the data)."""
        return forward_return_labels(close, self.horizon, self.kind, self.dead_band)
