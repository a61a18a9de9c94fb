"""Model families behind MLPipeline.

``tabular`` holds the tree models (scikit-learn contract); ``dnn``, ``lstm``, ``transformer`` and
``cnn1d`` hold one plain ``nn.Module`` each, registered in ``nets``; ``lit`` is the single
LightningModule they train in. Importing this package is cheap: torch loads with the submodules.
"""

from __future__ import annotations

TABULAR_TYPES: tuple[str, ...] = ("random_forest", "xgboost")
NET_TYPES: tuple[str, ...] = ("dnn", "lstm", "transformer", "cnn1d")
SEQUENCE_TYPES: tuple[str, ...] = ("lstm", "transformer", "cnn1d")
MODEL_TYPES: tuple[str, ...] = TABULAR_TYPES + NET_TYPES


def mlflow_model_code_path() -> str:
    """The file MLflow logs as the pyfunc model's code (see ``mlflow_model_code``)."""
    from pathlib import Path

    return str(Path(__file__).with_name("mlflow_model_code.py"))
