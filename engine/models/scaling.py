"""A small per-feature standard scaler for 2-D [n, f] and 3-D [n, seq, f] arrays.

Statistics are taken over every sample (and time step) of the data it is fitted on, which the
pipeline restricts to the training part of a split so validation data never leaks into them.
Kept in numpy so the stats travel in the model artifact as two plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import DataQualityError


@dataclass(frozen=True)
class StandardScaler:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> StandardScaler:
        flat = np.asarray(x, dtype="float64").reshape(-1, x.shape[-1])
        if flat.shape[0] == 0:
            raise DataQualityError("cannot fit a scaler on zero samples")
        std = flat.std(axis=0)
        # constant features keep scale 1 so they map to 0 instead of dividing by zero
        return cls(mean=flat.mean(axis=0), scale=np.where(std > 1e-12, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.mean.shape[0]:
            raise DataQualityError(f"scaler was fitted on {self.mean.shape[0]} features; got {x.shape[-1]}")
        return ((x - self.mean) / self.scale).astype("float32")

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> StandardScaler:
        return cls(mean=np.asarray(data["mean"], dtype="float64"), scale=np.asarray(data["scale"], dtype="float64"))
