"""Registry of the neural families: model_type -> nn.Module class, and a checked constructor."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from engine.errors import ConfigError
from engine.models.cnn1d import CNN1DNet
from engine.models.dnn import DNN
from engine.models.lstm import LSTMNet
from engine.models.transformer import TransformerNet

NETWORKS: dict[str, type[nn.Module]] = {
    "dnn": DNN,
    "lstm": LSTMNet,
    "transformer": TransformerNet,
    "cnn1d": CNN1DNet,
}


def network_params(model_type: str) -> list[str]:
    """Hyperparameter names a family accepts (everything but the shapes the pipeline supplies)."""
    sig = inspect.signature(NETWORKS[model_type].__init__)
    return [n for n in sig.parameters if n not in ("self", "n_features", "output_dim")]


def build_network(model_type: str, n_features: int, output_dim: int, params: Mapping[str, Any]) -> nn.Module:
    allowed = network_params(model_type)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"model.params.{unknown[0]}",
                          f"unknown hyperparameter(s) {unknown} for {model_type}; allowed: {allowed}")
    return NETWORKS[model_type](n_features=n_features, output_dim=output_dim, **dict(params))
