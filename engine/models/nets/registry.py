"""Registry of the neural families: model_type -> nn.Module class, and a checked constructor."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from engine.models.nets.cnn1d import CNN1DNet
from engine.models.nets.dnn import DNN
from engine.models.nets.lstm import LSTMNet
from engine.models.nets.transformer import TransformerNet
from engine.models.settings import family_params

NETWORKS: dict[str, type[nn.Module]] = {
    "dnn": DNN,
    "lstm": LSTMNet,
    "transformer": TransformerNet,
    "cnn1d": CNN1DNet,
}


def build_network(model_type: str, n_features: int, output_dim: int, params: Mapping[str, Any]) -> nn.Module:
    """The family's network with ``params`` checked against its settings (ConfigError naming the key)."""
    checked = dataclasses.asdict(family_params(model_type, params))
    return NETWORKS[model_type](n_features=n_features, output_dim=output_dim, **checked)
