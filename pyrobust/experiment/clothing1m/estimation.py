"""``T_hat`` for Clothing1M from the softmax of the cross-entropy network trained on the noisy 1M (Table 3's
#4): :func:`estimate`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pyrobust.experiment.clothing1m.config import NUM_CLASSES

__all__ = ["estimate"]


def estimate(
    probs: Any, noisy_labels: Any, *, estimator: str = "percentile", quantile: float = 0.97, T: Any = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``T_hat`` from the softmax of the cross-entropy network trained on the noisy 1M (Table 3's #4).

    ``pyrobust.estimate_transition_matrix(probs, quantile, method=estimator, labels=noisy_labels)`` (the
    paper's estimator is the 97% percentile of eqs. 12-13; the paper itself uses the clean-subset ``T`` on
    Clothing1M instead, section 5.3).

    Args:
        probs: ``n x 14`` float array or tensor, rows summing to 1.
        noisy_labels: the ``n`` noisy labels (int), same order (for ``confident_joint``; validated always).
        estimator: a registered estimator.
        quantile: the percentile of the ``percentile`` estimator, a fraction.
        T: the reference ``14 x 14`` ``T`` (from the clean subset) to compare with, or None.

    Returns:
        ``T_hat`` (float64 ``14 x 14`` CPU tensor) and a summary: ``estimator``, ``quantile`` (or None),
        ``n``, ``T_hat``, ``T``, ``estimation_error`` against ``T`` (or None).

    Raises:
        ValueError: probabilities or labels of the wrong shape or values, or an unknown estimator.
    """
    from pyrobust.estimate import estimate_transition_matrix, estimation_error

    probs = torch.as_tensor(np.asarray(probs))
    labels = torch.as_tensor(np.asarray(noisy_labels), dtype=torch.int64)
    if probs.dim() != 2 or probs.shape[1] != NUM_CLASSES or probs.shape[0] != labels.numel():
        raise ValueError(f"expected {labels.numel()} x {NUM_CLASSES} probabilities (one row per noisy training "
                         f"image), got {tuple(probs.shape)}")
    T_hat = estimate_transition_matrix(probs, quantile, method=estimator, labels=labels)
    T_hat = torch.as_tensor(T_hat, dtype=torch.float64).cpu()
    error = None
    if T is not None:
        T = torch.as_tensor(np.asarray(T), dtype=torch.float64)
        error = {k: float(v) for k, v in estimation_error(T_hat, T).items()}
    summary = {"dataset": "clothing1m", "estimator": estimator,
               "quantile": quantile if estimator == "percentile" else None, "n": int(labels.numel()),
               "T_hat": T_hat.tolist(), "T": None if T is None else T.tolist(), "estimation_error": error}
    return T_hat, summary
