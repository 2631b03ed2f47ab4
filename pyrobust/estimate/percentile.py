"""The paper's estimator of ``T``: anchor points read off a network's noisy class probabilities.

Patrini et al., CVPR 2017, section 4.3, eqs. 12-13, and section 5.1 for the ``alpha``-percentile. Under
the paper's assumptions ("perfect examples" ``x^i`` with ``p(y = i | x^i) = 1`` exist, and the network
models ``p(noisy | x)`` exactly), eq. 11 gives ``p(noisy = j | x^i) = T[i, j]``: for each class ``i``
pick an anchor ``x^i`` and read row ``i`` of ``T_hat`` off ``p(noisy | x^i)`` (eq. 13). Eq. 12 takes
``x^i = argmax_x p(noisy = i | x)`` (:func:`argmax`); section 5.1 replaces the argmax by the
``alpha``-percentile, ``alpha = 0.97``, to discard outliers whose probability is over-confident
(:func:`percentile`, the default of :func:`pyrobust.estimate_transition_matrix`).

Both run in O(C n) time with no Python loop over examples, on CPU or CUDA, for any ``n`` (no
``torch.quantile`` size limit), and never modify ``probs``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pyrobust.estimate.failures import warn_unanchored_classes

__all__ = ["argmax", "percentile"]


def percentile(
    probs: torch.Tensor,
    *,
    quantile: float = 0.97,
    filter_outliers: bool = True,
    row_normalize: bool = True,
    **options: Any,
) -> torch.Tensor:
    """``T_hat`` from ``quantile``-percentile anchors (Patrini et al. 2017, eqs. 12-13 and section 5.1).

    For each class ``i`` the anchor ``x^i`` is the example whose ``p(noisy = i | x)`` is the
    ``quantile``-quantile of column ``i`` with "higher" interpolation, i.e. the value of rank
    ``ceil(quantile * (n - 1))`` (0-based, ascending) as in
    ``np.quantile(probs[:, i], quantile, method="higher")``; among tied examples the first one. Then
    ``T_hat[i, :] = probs[x^i, :]`` (eq. 13). The authors' code instead zeroes every value ``>=`` that
    quantile and takes the argmax of the rest (the next value below it), and does so through a view of
    ``probs``, corrupting the columns read for later classes; here ``probs`` is never modified.
    ``quantile=1``, or ``filter_outliers=False``, is the argmax of eq. 12 (:func:`argmax`). The anchor is
    a near-perfect example of class ``i`` only if those make up more than ``1 - quantile`` of the sample:
    with 100 classes of 1% each they cannot, which is why the paper uses the argmax on CIFAR-100.

    Called by :func:`pyrobust.estimate_transition_matrix`, which validates the arguments first.

    Args:
        probs: ``n x C`` floating tensor (float32 or float64; CPU or CUDA), the softmax outputs
            ``p(noisy | x)`` of a network trained with cross-entropy on the noisy labels, rows summing to 1.
        quantile: a fraction in ``(0, 1]`` (``0.97``, not ``97``).
        filter_outliers: False takes the argmax anchors whatever ``quantile``.
        row_normalize: divide each row of ``T_hat`` by its sum (the paper does, after estimation).
        options: ignored (``labels``, and the options of other estimators).

    Returns:
        ``T_hat``, a float64 ``C x C`` tensor on ``probs``' device.

    Raises:
        ValueError: ``row_normalize`` and an anchor's probabilities are all zero.

    Warns:
        EstimationWarning: a class that no example anchors
            (:func:`pyrobust.estimate.failures.warn_unanchored_classes`), named.
    """
    if not filter_outliers or quantile == 1.0:
        warn_unanchored_classes(probs, 1.0, "percentile")
        anchors = probs.argmax(dim=0)  # first maximum of each column
    else:
        warn_unanchored_classes(probs, quantile, "percentile")
        anchors = _quantile_anchors(probs, quantile)
    return _anchor_rows(probs, anchors, row_normalize)


def argmax(probs: torch.Tensor, *, row_normalize: bool = True, **options: Any) -> torch.Tensor:
    """``T_hat`` from argmax anchors: eq. 12 of Patrini et al. 2017 as written, then eq. 13.

    ``x^i = argmax_x probs[x, i]`` (the first maximum of column ``i``) and ``T_hat[i, :] = probs[x^i, :]``;
    the paper's choice for CIFAR-100 (section 5.1). Since ``p(noisy = i | x) = sum_k T[k, i] p(y = k | x)``
    is at most ``max_k T[k, i]``, the argmax lands on a perfect example of class ``i`` only if ``T[i, i]``
    is the largest entry of column ``i``; with pair flips at ``N > 0.5`` (Table 2's ``N = 0.6``) it finds
    the perfect example of the class flipping into ``i`` instead.

    Args:
        probs: ``n x C`` floating tensor of softmax outputs ``p(noisy | x)`` (validated by
            :func:`pyrobust.estimate_transition_matrix`).
        row_normalize: divide each row of ``T_hat`` by its sum.
        options: ignored (``quantile``, ``filter_outliers``, ``labels``).

    Returns:
        ``T_hat``, a float64 ``C x C`` tensor on ``probs``' device.

    Raises:
        ValueError: ``row_normalize`` and an anchor's probabilities are all zero.

    Warns:
        EstimationWarning: a class that no example anchors
            (:func:`pyrobust.estimate.failures.warn_unanchored_classes`), named.
    """
    warn_unanchored_classes(probs, 1.0, "argmax")
    return _anchor_rows(probs, probs.argmax(dim=0), row_normalize)


def _anchor_rows(probs: torch.Tensor, anchors: torch.Tensor, row_normalize: bool) -> torch.Tensor:
    """Eq. 13: ``T_hat[i, :] = probs[anchors[i], :]`` in float64, optionally divided by its row sums."""
    T_hat = probs[anchors].to(torch.float64)
    if row_normalize:
        sums = T_hat.sum(dim=1, keepdim=True)
        if (sums <= 0).any():
            i = int(torch.nonzero(sums.squeeze(1) <= 0)[0])
            raise ValueError(f"the anchor of class {i} has all-zero probabilities; cannot row-normalise")
        T_hat = T_hat / sums
    return T_hat


def _quantile_anchors(P: torch.Tensor, q: float) -> torch.Tensor:
    """Per column, the first row whose value is the column's ``q``-quantile ("higher" interpolation)."""
    n = P.shape[0]
    rank = math.ceil((n - 1) * q)  # numpy's "higher": the same float64 expression, so the same rank
    # kthvalue selects in O(n) per column and, unlike torch.quantile, has no 2^24 input limit.
    values = torch.kthvalue(P, rank + 1, dim=0).values
    return (P == values).to(torch.uint8).argmax(dim=0)
