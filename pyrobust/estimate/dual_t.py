"""Dual-T: the transition matrix factored through the network's predicted noisy label.

Yao, Liu, Han, Gong, Deng, Niu & Sugiyama, "Dual T: Reducing Estimation Error for Transition Matrix in
Label-noise Learning", NeurIPS 2020. With ``Y'`` the intermediate class the network predicts
(``argmax_j p(noisy = j | x)``), ``T = T_clubs T_spades``: ``T_clubs[i, k] = p(Y' = k | Y = i)``, read at
anchor points as in the paper of Patrini et al. (:func:`pyrobust.estimate.percentile.percentile`), and
``T_spades[k, j] = p(noisy = j | Y' = k)``, *counted* from the predicted against the given noisy labels, so
its error does not depend on how well the network fits ``p(noisy | x)``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from pyrobust.estimate.failures import EstimationWarning
from pyrobust.estimate.percentile import percentile

__all__ = ["dual_t", "predicted_to_noisy"]


def dual_t(
    probs: torch.Tensor,
    *,
    labels: torch.Tensor,
    quantile: float = 0.97,
    filter_outliers: bool = True,
    **options: Any,
) -> torch.Tensor:
    """``T_hat = T_clubs @ T_spades`` (Yao et al., NeurIPS 2020, eq. 5 and section 3.2).

    ``T_clubs`` is the anchor-point estimate of ``probs`` (:func:`pyrobust.estimate.percentile.percentile`
    with ``quantile`` and ``filter_outliers``, row-normalised); ``T_spades`` is
    :func:`predicted_to_noisy`. O(C n + C^3), CPU or CUDA.

    Args:
        probs: ``n x C`` floating tensor of softmax outputs ``p(noisy | x)`` (validated by
            :func:`pyrobust.estimate_transition_matrix`).
        labels: the ``n`` given noisy labels, int64 on ``probs``' device, values in ``[0, C)``.
        quantile, filter_outliers: the anchors of ``T_clubs``, as :func:`~pyrobust.estimate.percentile.percentile`.
        options: ignored (``row_normalize``: the product of two row-stochastic matrices is one).

    Returns:
        ``T_hat``, a float64 ``C x C`` row-stochastic tensor on ``probs``' device.

    Raises:
        ValueError: an anchor of ``T_clubs`` has all-zero probabilities.

    Warns:
        EstimationWarning: a class that no example anchors (from ``T_clubs``), or that is never predicted
            (its row of ``T_spades`` is then the identity's).
    """
    T_clubs = percentile(probs, quantile=quantile, filter_outliers=filter_outliers, row_normalize=True)
    return T_clubs @ predicted_to_noisy(probs, labels)


def predicted_to_noisy(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``T_spades[k, j]``: the fraction of the examples predicted as ``k`` whose given noisy label is ``j``.

    Args:
        probs: ``n x C`` float tensor of ``p(noisy | x)``; the prediction is its row argmax.
        labels: the ``n`` noisy labels, int64 on ``probs``' device.

    Returns:
        float64 ``C x C`` row-stochastic tensor; a class never predicted gets the identity's row.

    Warns:
        EstimationWarning: a class is never predicted, named.
    """
    C = probs.shape[1]
    predicted = probs.argmax(dim=1)
    counts = torch.bincount(predicted * C + labels, minlength=C * C).reshape(C, C).to(torch.float64)
    totals = counts.sum(dim=1, keepdim=True)
    for k in torch.nonzero(totals.squeeze(1) == 0).flatten().tolist():
        warnings.warn(
            f"dual_t: class {k} is never the predicted class: its row of T_spades is taken as the identity's",
            EstimationWarning, stacklevel=3,
        )
    eye = torch.eye(C, dtype=torch.float64, device=probs.device)
    return torch.where(totals > 0, counts / totals.clamp(min=1), eye)
