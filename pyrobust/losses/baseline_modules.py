"""The baselines as modules in the manner of ``nn.CrossEntropyLoss``: ``loss(logits (B, C), target (B,))``, with
the shapes, dtypes, units and errors of their functions (:mod:`pyrobust.losses.baselines`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pyrobust._checks import check_reduction
from pyrobust.losses.ce_variants import _check_fraction, _check_sce, bootstrap_hard, bootstrap_soft, gce, sce
from pyrobust.losses.margin import savage, sigmoid, unhinged

__all__ = ["BaselineLoss", "BootstrapHardLoss", "BootstrapSoftLoss", "GCELoss", "SCELoss", "SavageLoss"]
__all__ += ["SigmoidLoss", "UnhingedLoss"]


class BaselineLoss(nn.Module):
    """``nn.Module`` form of a loss function of :mod:`pyrobust.losses.baselines`, in the manner of
    ``nn.CrossEntropyLoss``.

    ``BaselineLoss(gce, reduction="mean", q=0.7)(logits, target)`` is ``gce(logits, target, "mean", q=0.7)``
    bit for bit: the module only keeps the arguments. The named subclasses below are the usual way to
    build one; each checks its hyperparameters at construction.

    Args:
        loss: a loss function of :mod:`pyrobust.losses.baselines` (or any of the same signature); its paper
            and equation are its.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        hyperparameters: keyword arguments of ``loss`` (``q``, ``beta``, ``signed``, ``ignore_index``, ...).

    Raises:
        ValueError: an unknown ``reduction``. At a call, what ``loss`` raises
            (:mod:`pyrobust.losses.baselines`).
    """

    def __init__(self, loss: Callable[..., torch.Tensor], reduction: str = "mean", **hyperparameters: Any) -> None:
        super().__init__()
        self.loss = loss
        self.reduction = check_reduction(reduction)
        self.hyperparameters = hyperparameters

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``loss(logits (B, C), target (B,), reduction, **hyperparameters)``: () or (B,) for ``"none"``."""
        return self.loss(logits, target, self.reduction, **self.hyperparameters)

    def extra_repr(self) -> str:
        settings = "".join(f", {k}={v!r}" for k, v in self.hyperparameters.items())
        named = f"{self.loss.__name__}, " if type(self) is BaselineLoss else ""
        return f"{named}reduction={self.reduction!r}{settings}"


class UnhingedLoss(BaselineLoss):
    """:func:`unhinged` (van Rooyen et al., NIPS 2015, ``phi(v) = 1 - v``) as a module; raises as it does."""

    def __init__(self, reduction: str = "mean", *, signed: bool = False, ignore_index: int = -100) -> None:
        super().__init__(unhinged, reduction, signed=signed, ignore_index=ignore_index)


class SigmoidLoss(BaselineLoss):
    """:func:`sigmoid` (Ghosh et al., Neurocomputing 2015, ``phi(v) = sigma(-v)``) as a module; raises as it."""

    def __init__(self, reduction: str = "mean", *, signed: bool = False, ignore_index: int = -100) -> None:
        super().__init__(sigmoid, reduction, signed=signed, ignore_index=ignore_index)


class SavageLoss(BaselineLoss):
    """:func:`savage` (Masnadi-Shirazi & Vasconcelos, NIPS 2009, ``phi(v) = (1 + e^{2v})^-2``) as a module."""

    def __init__(self, reduction: str = "mean", *, signed: bool = False, ignore_index: int = -100) -> None:
        super().__init__(savage, reduction, signed=signed, ignore_index=ignore_index)


class BootstrapSoftLoss(BaselineLoss):
    """:func:`bootstrap_soft` (Reed et al. 2014, ``beta CE + (1 - beta) H(p)``) as a module; raises as it."""

    def __init__(self, reduction: str = "mean", *, beta: float = 0.95, ignore_index: int = -100) -> None:
        _check_fraction(beta, "beta")
        super().__init__(bootstrap_soft, reduction, beta=beta, ignore_index=ignore_index)


class BootstrapHardLoss(BaselineLoss):
    """:func:`bootstrap_hard` (Reed et al. 2014, ``-beta log p_y - (1 - beta) log max p``) as a module."""

    def __init__(self, reduction: str = "mean", *, beta: float = 0.8, ignore_index: int = -100) -> None:
        _check_fraction(beta, "beta")
        super().__init__(bootstrap_hard, reduction, beta=beta, ignore_index=ignore_index)


class GCELoss(BaselineLoss):
    """:func:`gce` (Zhang & Sabuncu, NeurIPS 2018, ``(1 - p_y^q) / q``) as a module; raises as it does."""

    def __init__(self, reduction: str = "mean", *, q: float = 0.7, ignore_index: int = -100) -> None:
        _check_fraction(q, "q")
        super().__init__(gce, reduction, q=q, ignore_index=ignore_index)


class SCELoss(BaselineLoss):
    """:func:`sce` (Wang et al., ICCV 2019, ``-alpha log p_y - beta A (1 - p_y)``) as a module; raises as it."""

    def __init__(
        self, reduction: str = "mean", *, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0,
        ignore_index: int = -100,
    ) -> None:
        _check_sce(alpha, beta, A)
        super().__init__(sce, reduction, alpha=alpha, beta=beta, A=A, ignore_index=ignore_index)
