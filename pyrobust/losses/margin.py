"""The margin losses of Table 2 (unhinged, sigmoid, Savage), made multi-class as the authors' benchmark did;
the conventions of every baseline (shapes, reduction, errors) are those of :mod:`pyrobust.losses.baselines`.

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

from pyrobust.losses._baseline_reduction import _checked_target, _reduce

__all__ = ["savage", "sigmoid", "unhinged"]


def unhinged(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
    *, signed: bool = False, ignore_index: int = -100,
) -> torch.Tensor:
    """Unhinged loss (van Rooyen, Menon & Williamson, NIPS 2015): ``phi(v) = 1 - v``.

    Multi-class as in the authors' benchmark: ``l(h, y) = mean_k (1 - e^y_k h_k) = 1 - h_y / C``
    (``signed=True``: ``mean_k (1 - t_k h_k)``). Unbounded below, so the paper stacks a batch-norm
    layer on the logits ("unhinged (BN)").

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1
    one-hot targets.
    Returns: the loss (dimensionless, unbounded below), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (:mod:`pyrobust.losses.baselines`).
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

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1
    one-hot targets.
    Returns: the loss (dimensionless, in (0, 1)), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (:mod:`pyrobust.losses.baselines`).
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

    Args: ``logits`` (B, C), ``target`` (B,), ``reduction``, ``ignore_index`` as every loss here
    (:mod:`pyrobust.losses.baselines`); ``signed``: ``+-1`` one-vs-all targets instead of the benchmark's 0/1
    one-hot targets.
    Returns: the loss (dimensionless, in (0, 1)), () or (B,) for ``"none"``.
    Raises: what every loss here raises for bad inputs (:mod:`pyrobust.losses.baselines`).
    """
    y, valid = _checked_target(logits, target, reduction, ignore_index)
    phi = lambda v: torch.sigmoid(-2.0 * v).square()  # noqa: E731  1/(1+e^{2v}) = sigma(-2v)
    return _reduce(_one_vs_all(phi, torch.softmax(logits, dim=1), y, signed), valid, reduction)


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
