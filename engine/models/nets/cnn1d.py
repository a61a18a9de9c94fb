"""CNN1D: stacked dilated causal convolutions (a small TCN) over a window [batch, seq, features].

Padding is on the left only, so the output at step t sees inputs <= t; dilations double per layer
(1, 2, 4, ...) so the receptive field grows exponentially with depth.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class CausalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(functional.pad(x, (self.left_pad, 0)))
        return functional.relu(self.drop(functional.relu(h)) + self.skip(x))


class CNN1DNet(nn.Module):
    def __init__(self, n_features: int, output_dim: int, channels: int = 32, kernel_size: int = 3,
                 num_layers: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        blocks = [CausalBlock(n_features if i == 0 else channels, channels, kernel_size, 2 ** i, dropout)
                  for i in range(num_layers)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, output_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features [batch, channels, seq]; step t depends on inputs <= t only."""
        return self.blocks(x.transpose(1, 2))  # conv wants [batch, channels, seq]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x)[:, :, -1])
