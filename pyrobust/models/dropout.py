"""The dropout layer of the paper's networks: ``nn.Dropout`` with a cheaper mask on CPU."""

from __future__ import annotations

import torch
from torch import nn

from pyrobust import _ops

__all__ = ["Dropout"]


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted dropout: zero each element with probability ``p``, scale the rest by
    ``1 / (1 - p)``) with a cheaper mask on CPU.

    torch's CPU samplers run a Mersenne Twister one element at a time: the two masks of the MNIST network
    cost more than anything in its training step but the matrix products. On CPU (float32/float64) the mask
    comes from ``torch.ops.pyrobust.dropout_mask`` instead: a counter-based hash of each element's index
    under a key drawn from torch's generator, so ``torch.manual_seed`` still fixes it, and it does not
    depend on the number of threads. Elsewhere (other devices and dtypes, ``inplace``, ``p`` of 0 or 1, or
    without the compiled extension) this is ``nn.Dropout`` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not self.training
            or self.inplace
            or not 0.0 < self.p < 1.0
            or x.dtype not in (torch.float32, torch.float64)
            or x.device.type != "cpu"
            or not _ops.available()
        ):
            return super().forward(x)
        return x * torch.ops.pyrobust.dropout_mask(x, self.p)
