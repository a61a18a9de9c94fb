"""MLflow pyfunc wrapper: the logged model is the MLPipeline artifact; predict returns probabilities.

It lives in the tracking layer (which may import the model layer, never the other way round).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class PipelinePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from engine.models.pipeline import MLPipeline

        self.pipeline = MLPipeline.load(context.artifacts["pipeline"])

    # no type hints here: MLflow would try to derive (and validate) a schema from them; the
    # logged signature already describes the input
    def predict(self, context, model_input, params=None):
        return self.pipeline.predict_proba(model_input)
