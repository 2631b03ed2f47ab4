"""Estimation of the noise transition matrix T from a network's noisy class probabilities.

``probs`` is the ``n x C`` softmax output ``p(noisy | x)`` of a network trained with plain cross-entropy on
the noisy labels, evaluated on any sample ``X'`` (the paper uses train + validation). The estimators:

- ``"percentile"`` (default) and ``"argmax"``: the paper's estimator (section 4.3, eqs. 12-13). Under its
  assumptions ("perfect examples" ``x^i`` with ``p(y = i | x^i) = 1`` exist and the network models
  ``p(noisy | x)`` exactly), eq. 11 gives ``p(noisy = j | x^i) = T[i, j]``. So for each class ``i`` pick
  an anchor ``x^i`` and read row ``i`` of ``T_hat`` off ``p(noisy | x^i)``. Eq. 12 takes
  ``x^i = argmax_x p(noisy = i | x)``; section 5.1 replaces the argmax by the ``alpha``-percentile
  (``alpha = 0.97``) to discard outliers whose probability is over-confident.
- ``"confident_joint"``: the confident-joint estimator of cleanlab (Northcutt, Jiang & Chuang, "Confident
  Learning", JAIR 2021), which also uses the noisy labels.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix

__all__ = ["ESTIMATION_METHODS", "estimate_transition_matrix", "estimation_error"]

#: Methods accepted by :func:`estimate_transition_matrix`.
ESTIMATION_METHODS = ("percentile", "argmax", "confident_joint")

# Tolerances on ``probs`` being probabilities: entries in [0, 1] and rows summing to 1 (float16 softmax
# outputs over 100 classes stay well inside these).
_PROB_ATOL = 1e-4
_ROW_SUM_ATOL = 1e-2


def estimate_transition_matrix(
    probs: torch.Tensor | np.ndarray,
    quantile: float = 0.97,
    *,
    method: Literal["percentile", "argmax", "confident_joint"] = "percentile",
    filter_outliers: bool = True,
    row_normalize: bool = True,
    labels: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Estimate ``T[i, j] = p(noisy = j | clean = i)`` from class probabilities ``probs`` (``n x C``).

    ``method="percentile"`` (the paper's default, section 5.1): for each class ``i`` the anchor ``x^i`` is
    the example whose ``p(noisy = i | x)`` is the ``quantile``-quantile of column ``i`` with "higher"
    interpolation, i.e. the value of rank ``ceil(quantile * (n - 1))`` (0-based, ascending) as in
    ``np.quantile(probs[:, i], quantile, method="higher")``; among tied examples the first one. Then
    ``T_hat[i, :] = probs[x^i, :]`` (eq. 13). The authors' code instead zeroes every value
    ``>=`` that quantile and takes the argmax of the rest (the next value below it), and does so through
    a view of ``probs``, corrupting the columns read for later classes; here ``probs`` is never modified.
    ``quantile`` is a fraction in ``(0, 1]`` (``0.97``, not ``97``); ``quantile=1`` is the argmax. The
    anchor is a near-perfect example of class ``i`` only if those make up more than ``1 - quantile`` of
    ``X'``: with 100 classes of 1% each they cannot, which is why the paper uses the argmax on CIFAR-100.

    ``method="argmax"``, or ``filter_outliers=False``: eq. 12 as written, ``x^i = argmax_x probs[x, i]``
    (the paper's choice for CIFAR-100). Since ``p(noisy = i | x) = sum_k T[k, i] p(y = k | x)`` is at most
    ``max_k T[k, i]``, the argmax lands on a perfect example of class ``i`` only if ``T[i, i]`` is the
    largest entry of column ``i``; with pair flips at ``N > 0.5`` (Table 2's ``N = 0.6``) it finds the
    perfect example of the class flipping into ``i`` instead.

    ``method="confident_joint"``: cleanlab's estimator, which needs the noisy ``labels`` (``n``, int).
    With per-class thresholds ``t_j = mean{probs[x, j] : labels[x] = j}``, each example with at least one
    ``probs[x, k] >= t_k`` is counted in the confident joint ``J[k*, labels[x]]``, where ``k*`` is its
    only such class or, if several, its argmax class; the diagonal is raised to at least 1, each column
    ``j`` is scaled to the number of examples labelled ``j`` (calibration), and
    ``T_hat[i, j] = J[i, j] / sum_j J[i, j]``. This equals cleanlab's ``noise_matrix.T`` up to cleanlab's
    rounding of the calibrated joint to integer counts (``quantile`` is ignored).

    ``row_normalize``: divide each row of ``T_hat`` by its sum (the paper does, after estimation).

    Runs in O(C n) time with no Python loop over examples, on CPU or CUDA tensors (or NumPy arrays), for
    any ``n`` (no ``torch.quantile`` size limit). Returns a float64 ``C x C`` tensor on ``probs``' device.
    """
    P = _as_probs(probs)
    if method not in ESTIMATION_METHODS:
        raise ValueError(f"unknown estimation method {method!r}; known: {', '.join(ESTIMATION_METHODS)}")
    if method == "confident_joint":
        if labels is None:
            raise ValueError("method='confident_joint' needs the noisy labels: pass labels (n class indices)")
        T_hat = _confident_joint(P, _as_labels(labels, P))
        T_hat = T_hat / T_hat.sum(dim=1, keepdim=True)
    else:
        q = _check_quantile(quantile)
        if method == "argmax" or not filter_outliers or q == 1.0:
            anchors = P.argmax(dim=0)  # first maximum of each column
        else:
            anchors = _quantile_anchors(P, q)
        T_hat = P[anchors].to(torch.float64)
        if row_normalize:
            sums = T_hat.sum(dim=1, keepdim=True)
            if (sums <= 0).any():
                i = int(torch.nonzero(sums.squeeze(1) <= 0)[0])
                raise ValueError(f"the anchor of class {i} has all-zero probabilities; cannot row-normalise")
            T_hat = T_hat / sums
    if row_normalize or method == "confident_joint":
        check_transition_matrix(T_hat, name="T_hat")
    return T_hat


def estimation_error(T_hat: torch.Tensor | np.ndarray, T: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Quality of an estimate: ``{"mae": mean_ij |T_hat - T|, "max_row_l1": max_i sum_j |T_hat - T|}``."""
    T_hat = torch.as_tensor(T_hat).detach().to("cpu", torch.float64)
    T = torch.as_tensor(T).detach().to("cpu", torch.float64)
    if T_hat.dim() != 2 or T_hat.shape != T.shape or T.shape[0] != T.shape[1]:
        raise ValueError(
            f"T_hat and T must both be C x C with the same C, got {tuple(T_hat.shape)} and {tuple(T.shape)}"
        )
    diff = (T_hat - T).abs()
    return {"mae": diff.mean().item(), "max_row_l1": diff.sum(dim=1).max().item()}


def _quantile_anchors(P: torch.Tensor, q: float) -> torch.Tensor:
    """Per column, the first row whose value is the column's ``q``-quantile ("higher" interpolation)."""
    n = P.shape[0]
    rank = math.ceil((n - 1) * q)  # numpy's "higher": the same float64 expression, so the same rank
    # kthvalue selects in O(n) per column and, unlike torch.quantile, has no 2^24 input limit.
    values = torch.kthvalue(P, rank + 1, dim=0).values
    return (P == values).to(torch.uint8).argmax(dim=0)


def _confident_joint(P: torch.Tensor, labels: torch.Tensor, *, calibrate: bool = True) -> torch.Tensor:
    """Confident joint ``J[true, noisy]`` (float64 counts) of Northcutt et al. (2021), section 3.1.

    Mirrors ``cleanlab.count.compute_confident_joint(labels, pred_probs, calibrate=...)`` transposed, without
    the final rounding of the calibrated joint to integers.
    """
    n, C = P.shape
    noisy_counts = torch.bincount(labels, minlength=C)
    if (noisy_counts == 0).any():
        missing = torch.nonzero(noisy_counts == 0).flatten().tolist()
        raise ValueError(
            f"confident_joint needs every class among the noisy labels; classes {missing} have none"
        )
    self_confidence = P.gather(1, labels[:, None]).squeeze(1).to(torch.float64)
    thresholds = torch.zeros(C, dtype=torch.float64, device=P.device).index_add_(0, labels, self_confidence)
    # cleanlab's constants: thresholds clipped below at 2e-6, compared with a 1e-6 slack.
    thresholds = (thresholds / noisy_counts).clamp(min=2e-6)
    confident = P.to(torch.float64) >= thresholds - 1e-6
    num_confident = confident.sum(dim=1)
    true_guess = torch.where(num_confident > 1, P.argmax(dim=1), confident.to(torch.uint8).argmax(dim=1))
    keep = num_confident > 0
    joint = torch.bincount(true_guess[keep] * C + labels[keep], minlength=C * C)
    joint = joint.reshape(C, C).to(torch.float64)
    joint.diagonal().clamp_(min=1.0)  # at least one confidently correct example per class
    if not calibrate:
        return joint
    # Calibration: column j (noisy label j) sums to the number of examples labelled j, so the total is n.
    return joint / joint.sum(dim=0, keepdim=True) * noisy_counts.to(torch.float64)


def _as_probs(probs: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``probs`` as an ``n x C`` floating tensor, checked to hold probabilities (half precision is upcast)."""
    P = probs.detach() if isinstance(probs, torch.Tensor) else torch.from_numpy(np.asarray(probs))
    if not P.is_floating_point():
        raise TypeError(f"probs must be floating point softmax outputs, got dtype {P.dtype}")
    if P.dim() != 2 or P.shape[0] < 1 or P.shape[1] < 2:
        raise ValueError(f"probs must be n x C with n >= 1 and C >= 2 classes, got shape {tuple(P.shape)}")
    if P.dtype in (torch.float16, torch.bfloat16):
        P = P.float()
    if not torch.isfinite(P).all():
        raise ValueError("probs has non-finite entries")
    lo, hi = P.aminmax()
    if lo < -_PROB_ATOL or hi > 1 + _PROB_ATOL:
        raise ValueError(
            "probs must be probabilities in [0, 1] (softmax outputs, not logits); "
            f"got values in [{lo.item():.4g}, {hi.item():.4g}]"
        )
    row_err = (P.sum(dim=1, dtype=torch.float64) - 1).abs()
    if (row_err > _ROW_SUM_ATOL).any():
        i = int(row_err.argmax())
        raise ValueError(
            f"each row of probs must sum to 1 (softmax outputs); row {i} sums to {P[i].sum().item():.6g}"
        )
    return P


def _as_labels(labels: torch.Tensor | np.ndarray, P: torch.Tensor) -> torch.Tensor:
    y = labels.detach() if isinstance(labels, torch.Tensor) else torch.from_numpy(np.asarray(labels))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"labels must hold integer class indices, got dtype {y.dtype}")
    if y.shape != (P.shape[0],):
        raise ValueError(f"labels must have shape ({P.shape[0]},) to match probs, got {tuple(y.shape)}")
    y = y.to(device=P.device, dtype=torch.int64)
    C = P.shape[1]
    if (y < 0).any() or (y >= C).any():
        bad = y[(y < 0) | (y >= C)][0].item()
        raise ValueError(f"labels holds class {bad} outside [0, {C})")
    return y


def _check_quantile(quantile: float) -> float:
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real):
        raise TypeError(f"quantile must be a number in (0, 1], got {quantile!r}")
    if not 0.0 < quantile <= 1.0:
        hint = f" (a fraction such as {quantile / 100:g}, not {quantile:g})" if 1 < quantile <= 100 else ""
        raise ValueError(f"quantile must be in (0, 1]{hint}, got {quantile!r}")
    return float(quantile)
