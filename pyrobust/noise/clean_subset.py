"""``T`` counted from examples that carry both a trusted (clean) and a noisy label."""

from __future__ import annotations

import numpy as np
import torch

from pyrobust.noise._validate import _check_num_classes, _labels_as_tensor, _validated

__all__ = ["from_clean_subset"]


def from_clean_subset(
    clean_labels: torch.Tensor | np.ndarray,
    noisy_labels: torch.Tensor | np.ndarray,
    num_classes: int,
) -> torch.Tensor:
    """``T`` counted from examples that carry both a trusted and a noisy label (paper, section 5.3).

    ``T[i, j] = #{clean = i, noisy = j} / #{clean = i}``: the maximum-likelihood estimate of ``T`` from
    a subset with trusted labels (Patrini et al. 2017, section 5.3, where Clothing1M's clean subset gives
    ``T``). Every class must occur among the clean labels, otherwise its row is unknown.

    Args:
        clean_labels, noisy_labels: the ``n`` trusted and noisy labels of the same examples, 1-D integer
            tensors (any device) or arrays with values in ``[0, C)``.
        num_classes: ``C``, an integer ``>= 2``.

    Returns:
        ``T``, a float64 ``C x C`` CPU tensor (rows sum to 1).

    Raises:
        ValueError: ``num_classes`` is invalid, the labels differ in length, are not 1-D or hold a class
            outside ``[0, C)``, or a class has no clean example.
        TypeError: the labels do not hold integers.
    """
    C = _check_num_classes(num_classes)
    clean = _labels_as_tensor(clean_labels, C, "clean_labels")
    noisy = _labels_as_tensor(noisy_labels, C, "noisy_labels")
    if clean.shape != noisy.shape:
        raise ValueError(
            f"clean_labels and noisy_labels differ in length: {clean.numel()} vs {noisy.numel()}"
        )
    counts = torch.bincount(clean * C + noisy, minlength=C * C).reshape(C, C).to(torch.float64)
    rows = counts.sum(dim=1, keepdim=True)
    missing = torch.nonzero(rows.squeeze(1) == 0).flatten().tolist()
    if missing:
        raise ValueError(f"classes {missing} have no clean example, so their rows of T cannot be counted")
    return _validated(counts / rows)
