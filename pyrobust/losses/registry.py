"""The methods of Table 2 by name: which loss, whether the model needs the batch-norm head, which ``T``.

Example::

    method = get_method("forward_est")   # method.bn_head is False, method.transition == "estimated"
    loss = method.make_loss(T_hat)       # an nn.Module: loss(logits, target)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
from torch import nn

from pyrobust.losses import baselines

__all__ = ["METHODS", "BaselineLoss", "Method", "get_method"]

Transition = Literal["true", "estimated"] | None


class BaselineLoss(nn.Module):
    """``nn.Module`` form of a loss function of :mod:`pyrobust.losses.baselines`.

    ``BaselineLoss(baselines.gce, reduction="mean", q=0.7)(logits, target)`` equals
    ``baselines.gce(logits, target, "mean", q=0.7)``.
    """

    def __init__(
        self, loss: Callable[..., torch.Tensor], reduction: str = "mean", **hyperparameters: float
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be one of ('mean', 'sum', 'none'), got {reduction!r}")
        self.loss = loss
        self.reduction = reduction
        self.hyperparameters = hyperparameters

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target, self.reduction, **self.hyperparameters)

    def extra_repr(self) -> str:
        settings = "".join(f", {k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{self.loss.__name__}, reduction={self.reduction!r}{settings}"


@dataclass(frozen=True)
class Method:
    """One row of Table 2.

    ``name``: the method's name in Table 2 (``cross_entropy``, ..., ``forward_est``).
    ``bn_head``: the model needs a batch-norm layer on its logits (unhinged and sigmoid; paper, sec. 5.2).
    ``transition``: ``None`` (no ``T``), ``"true"`` (the ``T`` used to corrupt the labels) or
    ``"estimated"`` (``T_hat`` from :func:`pyrobust.estimate_transition_matrix`).
    """

    name: str
    bn_head: bool
    transition: Transition
    _build: Callable[[torch.Tensor | None, str], nn.Module] = field(repr=False, compare=False)

    def make_loss(self, T: torch.Tensor | None = None, reduction: str = "mean") -> nn.Module:
        """The training loss, an ``nn.Module`` called as ``loss(logits, target)``.

        Methods with a ``transition`` need ``T`` (the true ``T`` or ``T_hat``, ``C x C``); the others
        ignore it.
        """
        if self.transition is not None and T is None:
            which = "the true T" if self.transition == "true" else "the estimate T_hat"
            raise ValueError(f"method {self.name!r} corrects the loss with {which}: pass T (C x C), got None")
        return self._build(T, reduction)


def _baseline(loss: Callable[..., torch.Tensor], T: torch.Tensor | None, reduction: str) -> nn.Module:
    return BaselineLoss(loss, reduction)


def _cross_entropy(T: torch.Tensor | None, reduction: str) -> nn.Module:
    return nn.CrossEntropyLoss(reduction=reduction)


def _forward(T: torch.Tensor, reduction: str) -> nn.Module:
    from pyrobust.losses.corrected import ForwardCorrectedLoss  # imported late: no cycle at package import

    return ForwardCorrectedLoss(T, reduction=reduction)


def _backward(T: torch.Tensor, reduction: str) -> nn.Module:
    from pyrobust.losses.corrected import BackwardCorrectedLoss

    return BackwardCorrectedLoss(T, reduction=reduction)


#: Table 2's methods (plus ``gce`` and ``sce``), in the paper's row order.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("cross_entropy", False, None, _cross_entropy),
        Method("unhinged_bn", True, None, partial(_baseline, baselines.unhinged)),
        Method("sigmoid_bn", True, None, partial(_baseline, baselines.sigmoid)),
        Method("savage", False, None, partial(_baseline, baselines.savage)),
        Method("bootstrap_soft", False, None, partial(_baseline, baselines.bootstrap_soft)),
        Method("bootstrap_hard", False, None, partial(_baseline, baselines.bootstrap_hard)),
        Method("backward", False, "true", _backward),
        Method("backward_est", False, "estimated", _backward),
        Method("forward", False, "true", _forward),
        Method("forward_est", False, "estimated", _forward),
        Method("gce", False, None, partial(_baseline, baselines.gce)),
        Method("sce", False, None, partial(_baseline, baselines.sce)),
    )
}


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
