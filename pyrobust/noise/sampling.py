"""Sampling noisy labels from a transition matrix, and measuring the noise actually drawn.

Patrini et al. 2017 (section 5.1) corrupt the clean training labels once with the noise of a Table 2
column: each example's label ``i`` is replaced by ``j`` with probability ``T[i, j]``.
"""

from __future__ import annotations

import numpy as np
import torch

from pyrobust.noise._validate import Labels, _as_cpu_tensor, _check_seed, _labels_as_tensor, _like, _validated

__all__ = ["corrupt", "noise_rate"]


def corrupt(labels: Labels, T: torch.Tensor | np.ndarray, seed: int) -> Labels:
    """Sample noisy labels ``noisy[k] ~ T[labels[k], :]`` independently for every example.

    The class-conditional noise model of Patrini et al. 2017 (``p(noisy = j | clean = i, x) = T[i, j]``,
    independent of the input ``x``), used in section 5.1 to corrupt the training sets.

    Bit-for-bit reproducible: the only randomness is one uniform ``u[k]`` per example drawn from a private
    ``torch.Generator`` seeded with ``seed`` (CPU, float64), so the result depends on nothing else in the
    process (global RNG state, device, input container). ``noisy[k]`` is the inverse CDF of row
    ``labels[k]`` at ``u[k]``, found for all examples by one ``searchsorted`` (O(n log C), no n x C buffer).

    Args:
        labels: the ``n`` clean labels, a 1-D integer tensor (any device) or array with values in
            ``[0, C)``; ``n`` may be 0.
        T: the ``C x C`` row-stochastic transition matrix (tensor or array, converted to float64).
        seed: an integer in ``[0, 2**63)``.

    Returns:
        The ``n`` noisy labels in the same container, dtype and device as ``labels``.

    Raises:
        ValueError: ``T`` is not a valid transition matrix, ``labels`` is not 1-D or holds a class outside
            ``[0, C)``, or ``seed`` is not an integer in ``[0, 2**63)``.
        TypeError: ``labels`` does not hold integers.
    """
    T = _validated(T).clamp(min=0.0)
    C = T.shape[0]
    clean = _labels_as_tensor(labels, C, "labels")
    generator = torch.Generator().manual_seed(_check_seed(seed))
    u = torch.rand(clean.numel(), generator=generator, dtype=torch.float64)
    # Row i of the flattened boundaries holds 2i + cdf(i, j) for j < C-1 and 2i + 2 last: rows occupy
    # disjoint ranges, so 2i + u lands in row i, and the last class absorbs any rounding of the cdf below 1.
    cdf = T.cumsum(dim=1)
    cdf[:, -1] = 2.0
    offsets = 2.0 * torch.arange(C, dtype=torch.float64)
    boundaries = (cdf + offsets[:, None]).reshape(-1)
    noisy = torch.searchsorted(boundaries, offsets[clean] + u, right=True) - clean * C
    return _like(noisy, labels)


def noise_rate(clean_labels: torch.Tensor | np.ndarray, noisy_labels: torch.Tensor | np.ndarray) -> float:
    """Realised noise rate: the fraction of examples whose noisy label differs from the clean one.

    Its expectation under :func:`corrupt` is ``sum_i p(clean = i) (1 - T[i, i])``; Table 2's ``N`` is the
    flip probability of the flipped classes, not this overall rate.

    Args:
        clean_labels, noisy_labels: label tensors or arrays of the same shape (any shape, any device,
            any dtype that compares elementwise), not empty.

    Returns:
        A Python float in ``[0, 1]``.

    Raises:
        ValueError: the shapes differ, or there are no labels.
    """
    clean, noisy = _as_cpu_tensor(clean_labels), _as_cpu_tensor(noisy_labels)
    if clean.shape != noisy.shape:
        raise ValueError(
            f"clean and noisy labels differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}"
        )
    if clean.numel() == 0:
        raise ValueError("noise_rate of an empty label set is undefined")
    return (clean != noisy).to(torch.float64).mean().item()
