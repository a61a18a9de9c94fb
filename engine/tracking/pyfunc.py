"""MLflow pyfunc wrapper: the logged model is the MLPipeline artifact; predict returns probabilities.

It lives in the tracking layer (which may import the model layer, never the other way round).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class PipelinePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from engine.models.pipeline import MLPipeline

        self.pipeline = MLPipeline.load(context.artifacts["pipeline"])

    # MLflow reads the hint of model_input: a DataFrame hint is one it derives no schema from, so it neither
    # converts nor re-validates the input (the logged signature describes it: a DataFrame for tabular
    # families, a float32 [n, seq, features] array for sequence ones, both of which predict_proba takes),
    # and it no longer warns "Add type hints to the `predict` method" on every logged model.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.pipeline.predict_proba(model_input)
