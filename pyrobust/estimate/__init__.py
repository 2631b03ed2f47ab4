"""Estimation of the noise transition matrix T from a network's noisy class probabilities.

``probs`` is the ``n x C`` softmax output ``p(noisy | x)`` of a network trained with plain cross-entropy on
the noisy labels, evaluated on any sample ``X'`` (the paper uses train + validation).
:func:`estimate_transition_matrix` validates it (and the noisy labels and the quantile, when given) and
hands it to an estimator of the registry (:func:`pyrobust.registry.get_estimator`). The built-in ones,
one module each:

- :mod:`~pyrobust.estimate.percentile`: ``"percentile"`` (default) and ``"argmax"``, the paper's estimator
  (Patrini et al., CVPR 2017, section 4.3, eqs. 12-13; the ``alpha``-percentile of section 5.1);
- :mod:`~pyrobust.estimate.confident_joint`: ``"confident_joint"``, cleanlab's estimator (Northcutt,
  Jiang & Chuang, "Confident Learning", JAIR 2021), which also uses the noisy labels.

An estimator of one's own is registered with :func:`pyrobust.register_estimator` (or an entry point of
the group ``pyrobust.estimators``) and used as ``estimate_transition_matrix(probs, method=name)``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix
from pyrobust.registry import ESTIMATORS, get_estimator, list_estimators, resolve

from pyrobust.estimate.failures import EstimationWarning

__all__ = ["EstimationWarning", "estimate_transition_matrix", "estimation_error"]

# Tolerances on ``probs`` being probabilities: entries in [0, 1] and rows summing to 1 (float16 softmax
# outputs over 100 classes stay well inside these).
_PROB_ATOL = 1e-4
_ROW_SUM_ATOL = 1e-2


def estimate_transition_matrix(
    probs: torch.Tensor | np.ndarray,
    quantile: float = 0.97,
    *,
    method: str = "percentile",
    filter_outliers: bool = True,
    row_normalize: bool = True,
    labels: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Estimate ``T[i, j] = p(noisy = j | clean = i)`` from class probabilities ``probs`` (``n x C``).

    ``method`` names an estimator of the registry (:func:`pyrobust.list_estimators`); the built-in ones:

    - ``"percentile"`` (the paper's default, Patrini et al. 2017, eqs. 12-13 with the ``quantile``-
      percentile of section 5.1): the anchor ``x^i`` of class ``i`` is the example whose
      ``p(noisy = i | x)`` is the ``quantile``-quantile of column ``i`` ("higher" interpolation, first of
      ties), and ``T_hat[i, :] = probs[x^i, :]`` (:func:`pyrobust.estimate.percentile.percentile`).
      ``filter_outliers=False`` or ``quantile=1`` gives the argmax.
    - ``"argmax"``: eq. 12 as written, ``x^i = argmax_x probs[x, i]`` (the paper's choice for CIFAR-100;
      :func:`pyrobust.estimate.percentile.argmax`).
    - ``"confident_joint"``: cleanlab's estimator (Northcutt et al., JAIR 2021, section 3.1), which needs
      the noisy ``labels``; always row-normalised, ``quantile`` unused
      (:func:`pyrobust.estimate.confident_joint.confident_joint`).

    The estimator is called ``function(P, labels=L, quantile=q, filter_outliers=..., row_normalize=...)``
    with the validated ``P`` (half precision upcast to float32), ``L`` (int64 on ``P``'s device, or None)
    and ``q`` (a float); its result is returned as a float64 tensor on ``P``'s device, checked to be a
    transition matrix when ``row_normalize``. Runs in O(C n) time for the built-in estimators, with no
    Python loop over examples, on CPU or CUDA tensors (or NumPy arrays), for any ``n``; ``probs`` is never
    modified.

    Args:
        probs: ``n x C`` floating tensor or array (float16/bfloat16/float32/float64, CPU or CUDA), softmax
            outputs ``p(noisy | x)`` (entries in ``[0, 1]``, rows summing to 1 within 1e-2), ``n >= 1``,
            ``C >= 2``.
        quantile: a fraction in ``(0, 1]`` (``0.97``, not ``97``), checked for every estimator.
        method: a registered estimator's name.
        filter_outliers: False takes the argmax anchors (``"percentile"``).
        row_normalize: divide each row of ``T_hat`` by its sum (the paper does, after estimation).
        labels: the ``n`` noisy labels (integer tensor or array, values in ``[0, C)``), required by an
            estimator with ``needs_labels`` (``"confident_joint"``), validated whenever given.

    Returns:
        ``T_hat``, a float64 ``C x C`` tensor on ``probs``' device.

    Raises:
        TypeError: ``probs`` is not floating point, ``labels`` not integers, ``quantile`` not a number.
        ValueError: ``probs`` is not ``n x C`` probabilities (e.g. logits, non-finite values, rows not
            summing to 1); ``quantile`` is not in ``(0, 1]``; ``method`` is not registered (the message
            lists the registered names); the estimator needs ``labels`` and got None, or ``labels`` has
            the wrong shape or a class outside ``[0, C)``; the estimator's own errors (an all-zero anchor
            row, a class absent from the labels); the result is not ``C x C``, or not a transition matrix
            when ``row_normalize``.
    """
    P = _as_probs(probs)
    if method not in ESTIMATORS:
        raise ValueError(f"unknown estimation method {method!r}; known: {', '.join(list_estimators())}")
    estimator = get_estimator(method)
    if estimator.needs_labels and labels is None:
        raise ValueError(f"method={method!r} needs the noisy labels: pass labels (n class indices)")
    L = None if labels is None else _as_labels(labels, P)
    q = _check_quantile(quantile)
    T_hat = resolve(estimator.function)(
        P, labels=L, quantile=q, filter_outliers=filter_outliers, row_normalize=row_normalize
    )
    T_hat = _as_estimate(T_hat, P, method)
    if row_normalize:
        check_transition_matrix(T_hat, name="T_hat")
    return T_hat


def estimation_error(T_hat: torch.Tensor | np.ndarray, T: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Quality of an estimate: ``{"mae": mean_ij |T_hat - T|, "max_row_l1": max_i sum_j |T_hat - T|}``.

    The mean absolute error per entry and the largest L1 distance between a row of ``T_hat`` and the row
    of ``T`` (the distance between the two noisy-label distributions of one clean class), both in units of
    probability; ``max_row_l1`` is at most 2 for row-stochastic matrices. A summary of pyrobust's (no
    equation of Patrini et al. 2017), printed by :func:`pyrobust.plot_transition_matrices`.

    Args:
        T_hat, T: ``C x C`` tensors or arrays (any float dtype, any device; compared in float64 on CPU).

    Returns:
        ``{"mae": float, "max_row_l1": float}``.

    Raises:
        ValueError: ``T_hat`` and ``T`` are not both square with the same ``C``.
    """
    T_hat = torch.as_tensor(T_hat).detach().to("cpu", torch.float64)
    T = torch.as_tensor(T).detach().to("cpu", torch.float64)
    if T_hat.dim() != 2 or T_hat.shape != T.shape or T.shape[0] != T.shape[1]:
        raise ValueError(
            f"T_hat and T must both be C x C with the same C, got {tuple(T_hat.shape)} and {tuple(T.shape)}"
        )
    diff = (T_hat - T).abs()
    return {"mae": diff.mean().item(), "max_row_l1": diff.sum(dim=1).max().item()}


def _as_estimate(T_hat: Any, P: torch.Tensor, method: str) -> torch.Tensor:
    """An estimator's result as a float64 ``C x C`` tensor on ``P``'s device (no copy for built-in ones)."""
    T_hat = torch.as_tensor(T_hat).to(device=P.device, dtype=torch.float64)
    C = P.shape[1]
    if T_hat.shape != (C, C):
        raise ValueError(
            f"estimator {method!r} returned shape {tuple(T_hat.shape)}; expected {C} x {C} for {C} classes"
        )
    return T_hat


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
