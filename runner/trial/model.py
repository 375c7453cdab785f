"""The MLP of the course and its weight-initialization schemes."""

from __future__ import annotations

import torch
from torch import nn

from runner.config import INITS, ModelConfig, lookup


def _xavier_uniform(w: torch.Tensor) -> None:
    nn.init.xavier_uniform_(w)


def _kaiming_normal(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, nonlinearity="relu")


def _uniform(w: torch.Tensor) -> None:
    nn.init.uniform_(w, -0.05, 0.05)  # the course's "uniform" scheme: U(-0.05, 0.05)


# config.INITS name -> weight initializer for Linear layers; "default" keeps PyTorch's own (Kaiming-uniform, a=sqrt(5)).
INITIALIZERS = {
    "default": None,
    "xavier_uniform": _xavier_uniform,
    "kaiming_normal": _kaiming_normal,
    "uniform": _uniform,
}
assert tuple(INITIALIZERS) == INITS, "runner.config.INITS names what this registry builds"


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm1d) -> ReLU -> (Dropout)] per hidden width -> Linear(classes)."""

    def __init__(self, cfg: ModelConfig, in_features: int, n_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in cfg.hidden:
            layers.append(nn.Linear(width, h))
            if cfg.batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU())
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(cfg: ModelConfig, in_features: int, n_classes: int) -> MLP:
    init = lookup(INITIALIZERS, cfg.init, "model.init")
    model = MLP(cfg, in_features, n_classes)
    if init is None:
        return model
    for m in model.modules():
        if isinstance(m, nn.Linear):
            init(m.weight)
            nn.init.zeros_(m.bias)
    return model
