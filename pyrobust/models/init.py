"""The paper's weight initialisation (section 5.1), shared by every network of :mod:`pyrobust.models`.

Weights feeding a ReLU get He et al.'s normal init (std ``sqrt(2 / fan_in)``); every other weight is
uniform in ``[-UNIFORM_INIT, UNIFORM_INIT]``; biases start at 0.
"""

from __future__ import annotations

from torch import nn

__all__ = ["UNIFORM_INIT", "he_init", "uniform_init"]

#: Uniform init range of the weights that do not feed a ReLU (paper, section 5.1).
UNIFORM_INIT = 0.05


def he_init(layer: nn.Linear | nn.Conv2d) -> None:
    """He et al. (2015) normal init for a layer whose output goes through a ReLU: std = sqrt(2 / fan_in)."""
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def uniform_init(layer: nn.Module) -> None:
    """The paper's init for every weight not followed by a ReLU: U[-0.05, 0.05], biases 0."""
    nn.init.uniform_(layer.weight, -UNIFORM_INIT, UNIFORM_INIT)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
