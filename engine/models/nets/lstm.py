"""LSTM classifier: reads a window [batch, seq, features] and classifies from the last step's state."""

from __future__ import annotations

import torch
from torch import nn


class LSTMNet(nn.Module):
    def __init__(self, n_features: int, output_dim: int, hidden_dim: int = 64, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden_dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_dim * (2 if bidirectional else 1),
                                                                 output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])
