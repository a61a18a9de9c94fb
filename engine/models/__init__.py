"""Model families behind MLPipeline.

``pipeline`` holds ``MLPipeline``, a thin facade over one family strategy per kind of model
(``family``): ``tabular`` (the tree models, scikit-learn contract) and ``nets`` (one plain
``nn.Module`` per architecture trained in the LightningModule of ``nets.lit``). ``settings`` holds the
trainer settings and each family's hyperparameters, ``artifact`` the zip format, ``explain`` SHAP, and
``hooks`` the extension points the tracking layer fills (the model layer never imports MLflow or DVC).

Importing this package is cheap: ``MLPipeline`` resolves on first use, torch with the first net.
"""

from __future__ import annotations

from typing import Any

TABULAR_TYPES: tuple[str, ...] = ("random_forest", "xgboost")
NET_TYPES: tuple[str, ...] = ("dnn", "lstm", "transformer", "cnn1d")
SEQUENCE_TYPES: tuple[str, ...] = ("lstm", "transformer", "cnn1d")
MODEL_TYPES: tuple[str, ...] = TABULAR_TYPES + NET_TYPES


def __getattr__(name: str) -> Any:
    if name == "MLPipeline":  # lazily: the config layer imports this package at start-up
        from engine.models.pipeline import MLPipeline

        return MLPipeline
    raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
