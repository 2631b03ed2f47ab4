"""The competing losses of Table 2 (paper, section 5.2) and two modern noise-robust baselines.

Every loss takes ``logits`` ``h`` (``B x C``, floating) and integer ``target`` ``y`` (``B``, int64 or uint8
in ``[0, C)`` or ``ignore_index``, default -100) and reduces like :func:`torch.nn.functional.cross_entropy`:
``reduction="mean"`` averages over the non-ignored examples, ``"sum"`` adds them, ``"none"`` returns the
``B`` per-example losses (0 where ignored); the result has the logits' dtype. Below ``p = softmax(h)``,
``e^y`` is the one-hot target. Each is a function (``gce(logits, target, "mean", q=0.7)``) and an
``nn.Module`` named like ``nn.CrossEntropyLoss`` (``GCELoss(q=0.7)(logits, target)``, bit for bit the same).

Every loss checks its inputs as every loss of pyrobust does (:mod:`pyrobust._checks`) and so raises what
``F.cross_entropy`` raises: ``TypeError``/:class:`~pyrobust._checks.DtypeError` (also a ``RuntimeError``)
for a wrong dtype, ``ValueError`` for wrong shapes or an unknown ``reduction``, ``IndexError`` for a class
outside ``[0, C)`` that is not ``ignore_index``; and ``ValueError`` for a hyperparameter out of range.

The margin losses (unhinged, sigmoid, Savage) are binary losses ``phi(v)`` of a margin ``v``. The authors'
benchmark (github.com/giorgiop/loss-correction, ``loss.py``) made them multi-class as the mean over the
``C`` classes of ``phi(e^y_k s_k)`` with the 0/1 one-hot target ``e^y`` and scores ``s`` (the BN-whitened
logits for unhinged and sigmoid, the softmax ``p`` for Savage), which equals
``(phi(s_y) + (C - 1) phi(0)) / C``. That is the default here, so values match the benchmark.
``signed=True`` uses ``+-1`` targets instead (``t_k = 2 e^y_k - 1``): the one-vs-all reduction
``mean_k phi(t_k s_k)``, which also pushes the scores of the wrong classes down.

Non-finite logits: a logit of ``-inf`` that is not the target's (a masked class) gives what the formula
gives in the limit (a term ``0 * h_k`` or ``p_k log p_k`` is 0 there, not NaN); a NaN or ``+inf`` logit gives
NaN, as ``F.cross_entropy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyrobust._checks import check_logits_and_target, check_reduction, check_targets

__all__ = ["bootstrap_hard", "bootstrap_soft", "gce", "savage", "sce", "sigmoid", "unhinged", "BaselineLoss"]
__all__ += ["BootstrapHardLoss", "BootstrapSoftLoss", "GCELoss", "SCELoss", "SavageLoss", "SigmoidLoss"]
__all__ += ["UnhingedLoss"]


def unhinged(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
    *, signed: bool = False, ignore_index: int = -100,
) -> torch.Tensor:
    """Unhinged loss (van Rooyen, Menon & Williamson, NIPS 2015): ``phi(v) = 1 - v``.

    Multi-class as in the authors' benchmark: ``l(h, y) = mean_k (1 - e^y_k h_k) = 1 - h_y / C``
    (``signed=True``: ``mean_k (1 - t_k h_k)``). Unbounded below, so the paper stacks a batch-norm
    layer on the logits ("unhinged (BN)").

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1 one-hot targets.
    Returns: the loss (dimensionless, unbounded below), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (module docstring).
    """
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    return _reduce(_one_vs_all(lambda v: 1.0 - v, logits, y, signed) + _nan_if_not_finite(logits), valid, reduction)


def sigmoid(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
    *, signed: bool = False, ignore_index: int = -100,
) -> torch.Tensor:
    """Sigmoid loss (Ghosh, Manwani & Sastry, Neurocomputing 2015): ``phi(v) = sigma(-v) = 1 / (1 + e^v)``.

    Multi-class as in the authors' benchmark: ``l(h, y) = mean_k sigma(-e^y_k h_k)
    = (sigma(-h_y) + (C - 1) / 2) / C`` (``signed=True``: ``mean_k sigma(-t_k h_k)``). It saturates
    early, so the paper stacks a batch-norm layer on the logits ("sigmoid (BN)").

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1 one-hot targets.
    Returns: the loss (dimensionless, in (0, 1)), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (module docstring).
    """
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    per_example = _one_vs_all(lambda v: torch.sigmoid(-v), logits, y, signed) + _nan_if_not_finite(logits)
    return _reduce(per_example, valid, reduction)


def savage(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
    *, signed: bool = False, ignore_index: int = -100,
) -> torch.Tensor:
    """Savage loss (Masnadi-Shirazi & Vasconcelos, NIPS 2009): ``phi(v) = 1 / (1 + e^{2v})^2``.

    Multi-class as in the authors' benchmark, on the softmax probabilities ``p`` (their model ends in a
    softmax for this loss): ``l(h, y) = mean_k phi(e^y_k p_k) = (phi(p_y) + (C - 1) / 4) / C``
    (``signed=True``: ``mean_k phi(t_k p_k)``). The benchmark clipped ``p`` to ``[1e-7, 1 - 1e-7]``,
    which only zeroes gradients; ``phi`` is smooth on ``[0, 1]``, so no clipping here.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1 one-hot targets.
    Returns: the loss (dimensionless, in (0, 1)), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (module docstring).
    """
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    phi = lambda v: torch.sigmoid(-2.0 * v).square()  # noqa: E731  1/(1+e^{2v}) = sigma(-2v)
    return _reduce(_one_vs_all(phi, torch.softmax(logits, dim=1), y, signed), valid, reduction)


def bootstrap_soft(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", *, beta: float = 0.95, ignore_index: int = -100
) -> torch.Tensor:
    """Soft bootstrapping (Reed et al., "Training deep neural networks on noisy labels with
    bootstrapping", arXiv 2014 / ICLR workshop 2015), ``beta = 0.95`` as in that paper.

    ``l(h, y) = -sum_k (beta e^y_k + (1 - beta) p_k) log p_k = beta CE(h, y) + (1 - beta) H(p)``: the
    target mixes the label with the prediction. The gradient flows through both factors, as in the
    authors' Keras loss and Reed et al.'s reading of it as entropy regularisation.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``beta``: weight of the label in the target, in ``(0, 1]``.
    Returns: the loss (nats, >= 0), () or (B,) for ``"none"``.
    Raises: ``ValueError`` for ``beta`` outside ``(0, 1]``; for bad inputs, as every loss here.
    """
    _check_fraction(beta, "beta")
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    cross_entropy = -log_p.gather(1, y[:, None]).squeeze(1)
    # p log p -> 0 as p -> 0: a masked class (log p = -inf) adds 0, not 0 * inf
    entropy = -(log_p.exp() * torch.where(torch.isneginf(log_p), 0.0, log_p)).sum(dim=1)
    return _reduce(beta * cross_entropy + (1.0 - beta) * entropy, valid, reduction)


def bootstrap_hard(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", *, beta: float = 0.8, ignore_index: int = -100
) -> torch.Tensor:
    """Hard bootstrapping (Reed et al. 2014), ``beta = 0.8`` as in that paper.

    ``l(h, y) = -sum_k (beta e^y_k + (1 - beta) z_k) log p_k = -beta log p_y - (1 - beta) log p_{k*}``
    with ``z = e^{k*}``, ``k* = argmax_k p_k``: the predicted class is a (constant) second target.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``beta``: weight of the label in the target, in ``(0, 1]``.
    Returns: the loss (nats, >= 0), () or (B,) for ``"none"``.
    Raises: ``ValueError`` for ``beta`` outside ``(0, 1]``; for bad inputs, as every loss here.
    """
    _check_fraction(beta, "beta")
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    predicted = logits.detach().argmax(dim=1)
    per_example = -beta * log_p.gather(1, y[:, None]) - (1.0 - beta) * log_p.gather(1, predicted[:, None])
    return _reduce(per_example.squeeze(1), valid, reduction)


def gce(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", *, q: float = 0.7, ignore_index: int = -100
) -> torch.Tensor:
    """Generalised cross-entropy ``L_q`` (Zhang & Sabuncu, NeurIPS 2018), ``q = 0.7`` as in that paper.

    ``l(h, y) = (1 - p_y^q) / q`` for ``0 < q <= 1``: cross-entropy in the limit ``q -> 0``, the mean
    absolute error (up to a factor) at ``q = 1``. Computed as ``-expm1(q log p_y) / q`` for accuracy.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``q``: the exponent, in ``(0, 1]``.
    Returns: the loss (dimensionless, in [0, 1 / q]), () or (B,) for ``"none"``.
    Raises: ``ValueError`` for ``q`` outside ``(0, 1]``; for bad inputs, as every loss here.
    """
    _check_fraction(q, "q")
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return _reduce(-torch.expm1(q * log_p_y) / q, valid, reduction)


def sce(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
    *, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0, ignore_index: int = -100,
) -> torch.Tensor:
    """Symmetric cross-entropy (Wang et al., ICCV 2019); ``alpha = 0.1``, ``beta = 1``, ``A = -4`` as in
    that paper for CIFAR-10.

    ``l(h, y) = alpha CE + beta RCE`` with the reverse cross-entropy ``RCE = -sum_k p_k log e^y_k`` in
    which ``log 0`` is truncated to ``A < 0``, so ``RCE = -A (1 - p_y)`` and
    ``l(h, y) = -alpha log p_y - beta A (1 - p_y)``.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here (module
    docstring); ``alpha``, ``beta`` (>= 0): weights of CE and RCE; ``A`` (< 0): the value of ``log 0``.
    Returns: the loss (nats, >= 0), () or (B,) for ``"none"``.
    Raises: ``ValueError`` for ``A >= 0`` or a negative weight; for bad inputs, as every loss here.
    """
    _check_sce(alpha, beta, A)
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return _reduce(-alpha * log_p_y - beta * A * (1.0 - log_p_y.exp()), valid, reduction)


def _one_vs_all(phi, scores: torch.Tensor, y: torch.Tensor, signed: bool) -> torch.Tensor:
    """``mean_k phi(t_k s_k)`` per example, with ``t = e^y`` (0/1), or ``2 e^y - 1`` (+-1) if ``signed``; a
    product ``0 * -inf`` (a masked class) is its limit 0, not NaN (``0 * +inf`` and ``0 * nan`` stay NaN)."""
    t = F.one_hot(y, scores.shape[1]).to(scores.dtype)
    if signed:
        t = 2.0 * t - 1.0
    margin = torch.where((t == 0) & torch.isneginf(scores), 0.0, t * scores)
    return phi(margin).mean(dim=1)


def _nan_if_not_finite(logits: torch.Tensor) -> torch.Tensor:
    """0 per example (with a 0 gradient), NaN (and a NaN gradient) where a logit is NaN or +inf (or all are
    -inf): the margin losses read only some logits through a bounded or linear phi, and would otherwise give
    a finite or infinite number where F.cross_entropy gives NaN."""
    return 0.0 * torch.logsumexp(logits, dim=1)


def _checked_target(
    logits: torch.Tensor, target: torch.Tensor, reduction: str, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the inputs (``pyrobust._checks``); return ``target`` with ignored entries set to 0 (safe to
    gather) and the mask of the examples that count."""
    check_targets(target, check_logits_and_target(logits, target, reduction), ignore_index)
    valid = target != ignore_index
    return torch.where(valid, target.long(), 0), valid


def _reduce(per_example: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce like ``F.cross_entropy``: ignored examples count 0; "mean" divides by the number kept."""
    per_example = torch.where(valid, per_example, 0.0)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / valid.sum()


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_sce(alpha: float, beta: float, A: float) -> None:
    if not A < 0:
        raise ValueError(f"A stands for log 0 and must be negative, got {A!r}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha!r}, beta={beta!r}")


# --- modules: loss(logits (B, C), target (B,)), shapes, dtypes, units and errors of their functions ------


class BaselineLoss(nn.Module):
    """``nn.Module`` form of a loss function of this module, in the manner of ``nn.CrossEntropyLoss``.

    ``BaselineLoss(gce, reduction="mean", q=0.7)(logits, target)`` is ``gce(logits, target, "mean", q=0.7)``
    bit for bit: the module only keeps the arguments. The named subclasses below are the usual way to
    build one; each checks its hyperparameters at construction.

    Args:
        loss: a loss function of this module (or any of the same signature); its paper and equation are its.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        hyperparameters: keyword arguments of ``loss`` (``q``, ``beta``, ``signed``, ``ignore_index``, ...).

    Raises:
        ValueError: an unknown ``reduction``. At a call, what ``loss`` raises (module docstring).
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
