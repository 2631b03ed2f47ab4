"""The baselines that modify the cross-entropy: soft and hard bootstrapping (Reed et al., Table 2), GCE and SCE;
the conventions of every baseline (shapes, reduction, errors) are those of :mod:`pyrobust.losses.baselines`."""

from __future__ import annotations

import torch

from pyrobust.losses._baseline_reduction import _checked_target, _reduce

__all__ = ["bootstrap_hard", "bootstrap_soft", "gce", "sce"]


def bootstrap_soft(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", *, beta: float = 0.95, ignore_index: int = -100
) -> torch.Tensor:
    """Soft bootstrapping (Reed et al., "Training deep neural networks on noisy labels with
    bootstrapping", arXiv 2014 / ICLR workshop 2015), ``beta = 0.95`` as in that paper.

    ``l(h, y) = -sum_k (beta e^y_k + (1 - beta) p_k) log p_k = beta CE(h, y) + (1 - beta) H(p)``: the
    target mixes the label with the prediction. The gradient flows through both factors, as in the
    authors' Keras loss and Reed et al.'s reading of it as entropy regularisation.

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``beta``: weight of the label in the target, in ``(0, 1]``.
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

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``beta``: weight of the label in the target, in ``(0, 1]``.
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

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``q``: the exponent, in ``(0, 1]``.
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

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``alpha``, ``beta`` (>= 0): weights of CE and RCE; ``A`` (< 0): the value of
    ``log 0``.
    Returns: the loss (nats, >= 0), () or (B,) for ``"none"``.
    Raises: ``ValueError`` for ``A >= 0`` or a negative weight; for bad inputs, as every loss here.
    """
    _check_sce(alpha, beta, A)
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return _reduce(-alpha * log_p_y - beta * A * (1.0 - log_p_y.exp()), valid, reduction)


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_sce(alpha: float, beta: float, A: float) -> None:
    if not A < 0:
        raise ValueError(f"A stands for log 0 and must be negative, got {A!r}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha!r}, beta={beta!r}")
