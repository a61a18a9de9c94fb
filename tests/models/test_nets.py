"""Network shapes and causality: no output at step t may depend on inputs after t."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError
from engine.models.nets.registry import NETWORKS, build_network


@pytest.mark.parametrize(("model_type", "shape"), [("dnn", (5, 7)), ("lstm", (5, 12, 7)),
                                                   ("transformer", (5, 12, 7)), ("cnn1d", (5, 12, 7))])
def test_logits_shape(model_type, shape):
    torch.manual_seed(0)
    net = build_network(model_type, n_features=7, output_dim=3, params={}).eval()
    assert net(torch.randn(*shape)).shape == (5, 3)


@pytest.mark.parametrize("model_type", ["transformer", "cnn1d"])
def test_per_step_states_are_causal(model_type):
    torch.manual_seed(0)
    net = build_network(model_type, n_features=4, output_dim=2, params={"dropout": 0.0}).eval()
    x = torch.randn(2, 16, 4)
    future_changed = x.clone()
    future_changed[:, 10:, :] += 5.0
    a, b = net.encode(x), net.encode(future_changed)
    if model_type == "cnn1d":  # [batch, channels, seq]
        a, b = a.transpose(1, 2), b.transpose(1, 2)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-5)
    assert not torch.allclose(a[:, 10:], b[:, 10:], atol=1e-3)


def test_lstm_output_reads_the_newest_step():
    torch.manual_seed(0)
    net = build_network("lstm", n_features=3, output_dim=2, params={"hidden_dim": 8}).eval()
    x = torch.randn(4, 10, 3)
    y = x.clone()
    y[:, -1] += 3.0
    assert not torch.allclose(net(x), net(y))


def test_unknown_hyperparameter_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="hidden_dim"):
        build_network("lstm", 3, 2, {"hiden_dim": 8})
    assert set(NETWORKS) == {"dnn", "lstm", "transformer", "cnn1d"}
