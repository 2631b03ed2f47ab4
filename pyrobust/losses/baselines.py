"""The competing losses of Table 2 (paper, section 5.2) and two modern noise-robust baselines.

Every loss takes ``logits`` ``h`` (``B x C``, floating) and integer ``target`` ``y`` (``B``, int64 in
``[0, C)`` or ``ignore_index``) and reduces like :func:`torch.nn.functional.cross_entropy`:
``reduction="mean"`` averages over the non-ignored examples, ``"sum"`` adds them, ``"none"`` returns the
``B`` per-example losses (0 where ignored). Below ``p = softmax(h)``, ``e^y`` is the one-hot target.

The margin losses (unhinged, sigmoid, Savage) are binary losses ``phi(v)`` of a margin ``v``. The authors'
benchmark (github.com/giorgiop/loss-correction, ``loss.py``) made them multi-class as the mean over the
``C`` classes of ``phi(e^y_k s_k)`` with the 0/1 one-hot target ``e^y`` and scores ``s`` (the BN-whitened
logits for unhinged and sigmoid, the softmax ``p`` for Savage), which equals
``(phi(s_y) + (C - 1) phi(0)) / C``. That is the default here, so values match the benchmark.
``signed=True`` uses ``+-1`` targets instead (``t_k = 2 e^y_k - 1``): the one-vs-all reduction
``mean_k phi(t_k s_k)``, which also pushes the scores of the wrong classes down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bootstrap_hard", "bootstrap_soft", "gce", "savage", "sce", "sigmoid", "unhinged"]

_REDUCTIONS = ("mean", "sum", "none")


def unhinged(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    signed: bool = False,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Unhinged loss (van Rooyen, Menon & Williamson, NIPS 2015): ``phi(v) = 1 - v``.

    Multi-class as in the authors' benchmark: ``l(h, y) = mean_k (1 - e^y_k h_k) = 1 - h_y / C``
    (``signed=True``: ``mean_k (1 - t_k h_k)``). Unbounded below, so the paper stacks a batch-norm
    layer on the logits ("unhinged (BN)").
    """
    y, valid = _checked_target(logits, target, ignore_index)
    return _reduce(_one_vs_all(lambda v: 1.0 - v, logits, y, signed), valid, reduction)


def sigmoid(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    signed: bool = False,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Sigmoid loss (Ghosh, Manwani & Sastry, Neurocomputing 2015): ``phi(v) = sigma(-v) = 1 / (1 + e^v)``.

    Multi-class as in the authors' benchmark: ``l(h, y) = mean_k sigma(-e^y_k h_k)
    = (sigma(-h_y) + (C - 1) / 2) / C`` (``signed=True``: ``mean_k sigma(-t_k h_k)``). It saturates
    early, so the paper stacks a batch-norm layer on the logits ("sigmoid (BN)").
    """
    y, valid = _checked_target(logits, target, ignore_index)
    return _reduce(_one_vs_all(lambda v: torch.sigmoid(-v), logits, y, signed), valid, reduction)


def savage(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    signed: bool = False,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Savage loss (Masnadi-Shirazi & Vasconcelos, NIPS 2009): ``phi(v) = 1 / (1 + e^{2v})^2``.

    Multi-class as in the authors' benchmark, on the softmax probabilities ``p`` (their model ends in a
    softmax for this loss): ``l(h, y) = mean_k phi(e^y_k p_k) = (phi(p_y) + (C - 1) / 4) / C``
    (``signed=True``: ``mean_k phi(t_k p_k)``). The benchmark clipped ``p`` to ``[1e-7, 1 - 1e-7]``,
    which only zeroes gradients; ``phi`` is smooth on ``[0, 1]``, so no clipping here.
    """
    y, valid = _checked_target(logits, target, ignore_index)
    phi = lambda v: torch.sigmoid(-2.0 * v).square()  # noqa: E731  1/(1+e^{2v}) = sigma(-2v)
    return _reduce(_one_vs_all(phi, torch.softmax(logits, dim=1), y, signed), valid, reduction)


def bootstrap_soft(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    beta: float = 0.95,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Soft bootstrapping (Reed et al., "Training deep neural networks on noisy labels with
    bootstrapping", arXiv 2014 / ICLR workshop 2015), ``beta = 0.95`` as in that paper.

    ``l(h, y) = -sum_k (beta e^y_k + (1 - beta) p_k) log p_k = beta CE(h, y) + (1 - beta) H(p)``: the
    target mixes the label with the prediction. The gradient flows through both factors, as in the
    authors' Keras loss and Reed et al.'s reading of it as entropy regularisation.
    """
    _check_fraction(beta, "beta")
    y, valid = _checked_target(logits, target, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    cross_entropy = -log_p.gather(1, y[:, None]).squeeze(1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    return _reduce(beta * cross_entropy + (1.0 - beta) * entropy, valid, reduction)


def bootstrap_hard(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    beta: float = 0.8,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Hard bootstrapping (Reed et al. 2014), ``beta = 0.8`` as in that paper.

    ``l(h, y) = -sum_k (beta e^y_k + (1 - beta) z_k) log p_k = -beta log p_y - (1 - beta) log p_{k*}``
    with ``z = e^{k*}``, ``k* = argmax_k p_k``: the predicted class is a (constant) second target.
    """
    _check_fraction(beta, "beta")
    y, valid = _checked_target(logits, target, ignore_index)
    log_p = torch.log_softmax(logits, dim=1)
    predicted = logits.detach().argmax(dim=1)
    per_example = -beta * log_p.gather(1, y[:, None]) - (1.0 - beta) * log_p.gather(1, predicted[:, None])
    return _reduce(per_example.squeeze(1), valid, reduction)


def gce(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    q: float = 0.7,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Generalised cross-entropy ``L_q`` (Zhang & Sabuncu, NeurIPS 2018), ``q = 0.7`` as in that paper.

    ``l(h, y) = (1 - p_y^q) / q`` for ``0 < q <= 1``: cross-entropy in the limit ``q -> 0``, the mean
    absolute error (up to a factor) at ``q = 1``. Computed as ``-expm1(q log p_y) / q`` for accuracy.
    """
    _check_fraction(q, "q")
    y, valid = _checked_target(logits, target, ignore_index)
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return _reduce(-torch.expm1(q * log_p_y) / q, valid, reduction)


def sce(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    A: float = -4.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Symmetric cross-entropy (Wang et al., ICCV 2019); ``alpha = 0.1``, ``beta = 1``, ``A = -4`` as in
    that paper for CIFAR-10.

    ``l(h, y) = alpha CE + beta RCE`` with the reverse cross-entropy ``RCE = -sum_k p_k log e^y_k`` in
    which ``log 0`` is truncated to ``A < 0``, so ``RCE = -A (1 - p_y)`` and
    ``l(h, y) = -alpha log p_y - beta A (1 - p_y)``.
    """
    if not A < 0:
        raise ValueError(f"A stands for log 0 and must be negative, got {A!r}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha!r}, beta={beta!r}")
    y, valid = _checked_target(logits, target, ignore_index)
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return _reduce(-alpha * log_p_y - beta * A * (1.0 - log_p_y.exp()), valid, reduction)


def _one_vs_all(phi, scores: torch.Tensor, y: torch.Tensor, signed: bool) -> torch.Tensor:
    """``mean_k phi(t_k s_k)`` per example, with ``t = e^y`` (0/1), or ``2 e^y - 1`` (+-1) if ``signed``."""
    t = F.one_hot(y, scores.shape[1]).to(scores.dtype)
    if signed:
        t = 2.0 * t - 1.0
    return phi(t * scores).mean(dim=1)


def _checked_target(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the inputs; return ``target`` with ignored entries set to 0 (safe to gather) and the mask
    of the examples that count."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 2:
        raise ValueError(f"logits must be a floating point B x C tensor, got {_describe(logits)}")
    B, C = logits.shape
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64 or target.shape != (B,):
        raise ValueError(
            f"target must be an int64 tensor of shape ({B},) of class indices, got {_describe(target)}"
        )
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= C))
    if bad.any():
        raise ValueError(
            f"target holds class {target[bad][0].item()} outside [0, {C}) (ignore_index={ignore_index})"
        )
    return torch.where(valid, target, 0), valid


def _reduce(per_example: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce like ``F.cross_entropy``: ignored examples count 0; "mean" divides by the number kept."""
    per_example = torch.where(valid, per_example, 0.0)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        return per_example.sum() / valid.sum()
    raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(_REDUCTIONS)}")


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _describe(x: object) -> str:
    return f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
