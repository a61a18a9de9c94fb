"""DNN: a multi-layer perceptron over one feature row [batch, features]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DNN(nn.Module):
    def __init__(self, n_features: int, output_dim: int, hidden_dims: Sequence[int] = (128, 64),
                 dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden_dims:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, output_dim))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
