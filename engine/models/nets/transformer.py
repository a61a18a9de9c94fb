"""Transformer encoder classifier with sinusoidal positional encoding over a window [batch, seq, features].

A causal attention mask keeps each position to earlier steps; the last position (the newest bar)
summarises the window for the classification head.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class TransformerNet(nn.Module):
    def __init__(self, n_features: int, output_dim: int, d_model: int = 32, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 64, dropout: float = 0.1, max_len: int = 1024) -> None:
        super().__init__()
        self.max_len = max_len
        self.proj = nn.Linear(n_features, d_model)
        self.pos = PositionalEncoding(d_model, max_len)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, output_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step hidden states [batch, seq, d_model]; step t attends to steps <= t only."""
        seq = x.shape[1]
        if seq > self.max_len:
            raise ValueError(f"window of {seq} steps exceeds the transformer's max_len={self.max_len}")
        mask = torch.triu(torch.full((seq, seq), float("-inf"), device=x.device), diagonal=1)
        return self.encoder(self.pos(self.proj(x)), mask=mask, is_causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x)[:, -1, :])
