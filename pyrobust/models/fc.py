"""The MNIST network of section 5.1 (``fc``): 784-128-128-C dense, ReLU, dropout after each hidden layer."""

from __future__ import annotations

from torch import nn

from pyrobust.models.dropout import Dropout
from pyrobust.models.init import he_init, uniform_init

__all__ = ["FullyConnected"]


class FullyConnected(nn.Sequential):
    """MNIST network: ``x (N, 784) -> logits (N, C)`` through two ReLU layers of 128 units with dropout."""

    def __init__(self, num_classes: int, *, in_features: int = 784, hidden: int = 128, dropout: float = 0.5):
        fc1, fc2, out = nn.Linear(in_features, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, num_classes)
        he_init(fc1)
        he_init(fc2)
        uniform_init(out)
        super().__init__(fc1, nn.ReLU(), Dropout(dropout), fc2, nn.ReLU(), Dropout(dropout), out)
