"""Conditioning of T for the backward correction: one measure, one limit, one remedy (paper, section 4.1).

The backward correction (Theorem 1) multiplies the vector of per-class losses by ``T^{-1}``, whose entries
grow with the condition number of ``T``; past some point the loss and its gradients are dominated by
amplified noise. Patrini et al. (section 4.1) mix ``T`` with the identity, ``(1 - lam) T + lam I``, a more
conservative noise-free prior, before inverting it. Here:

* :func:`condition_number`: the one measure, the 1-norm condition number ``||T||_1 ||T^-1||_1`` (computed
  from the inverse that the loss needs anyway: no SVD, so it stays cheap at C = 32,000);
* :data:`MAX_CONDITION_NUMBER`: the one limit: the backward-corrected loss refuses a ``T`` above it, and
  the experiment's trainer mixes ``T`` with the identity until it is under it;
* :func:`identity_mix_for`: the one remedy, the smallest ``lam`` that brings ``T`` under the limit; the
  loss's error message names it.
"""

from __future__ import annotations

import math

import torch

__all__ = ["MAX_CONDITION_NUMBER", "condition_number", "identity_mix_for"]

#: Largest 1-norm condition number of T (after mixing with the identity) that the backward correction
#: accepts (:func:`pyrobust.backward_corrected_cross_entropy`, :class:`pyrobust.BackwardCorrectedLoss`).
#: The entries of T^-1, which multiply the per-class losses, grow with it. The true T of Table 2 has
#: cond_1 <= 10, the paper's estimates on the default MNIST-5k run <= 48.
MAX_CONDITION_NUMBER = 100.0


def condition_number(T: torch.Tensor) -> float:
    """The 1-norm condition number ``cond_1(T) = ||T||_1 ||T^-1||_1`` (max absolute column sum norm).

    Dimensionless, ``>= 1``; ``inf`` for a singular ``T`` (an exactly zero pivot, or a non-finite inverse).
    The measure by which the backward correction refuses an ill-conditioned ``T`` (paper, section 4.1) and
    by which :func:`identity_mix_for` chooses the mix. Not differentiated (``T`` is detached). Costs one
    LU inverse in float64: O(C^3).

    Args:
        T: ``(C, C)`` matrix (any floating dtype or array-like; measured in float64), usually the
            row-stochastic ``T[i, j] = p(noisy = j | clean = i)``, possibly mixed with the identity.

    Returns:
        The condition number, a Python float in ``[1, inf]``.

    Raises:
        ValueError: ``T`` is not a square, non-empty matrix.
    """
    T = _square(T).detach()
    T_inv, info = torch.linalg.inv_ex(T)
    if int(info) != 0:
        return math.inf
    cond = float(torch.linalg.matrix_norm(T, 1) * torch.linalg.matrix_norm(T_inv, 1))
    return cond if math.isfinite(cond) else math.inf


def identity_mix_for(T: torch.Tensor, max_condition: float = MAX_CONDITION_NUMBER) -> float:
    """The smallest ``lam`` on a 0.01 grid with ``cond_1((1 - lam) T + lam I) <= max_condition``.

    The paper's remedy for the backward correction when ``T`` (usually ``T_hat``) is close to singular: mix
    it with the identity before inverting, a more conservative noise-free prior (section 4.1). Returns 0.0
    when ``T`` is well conditioned; ``lam = 1`` (``I``, no correction: condition number 1) qualifies for any
    ``max_condition >= 1``, and 1.0 is returned as well when none qualifies. Pass the result as
    ``identity_mix`` to the backward correction; with ``max_condition <= MAX_CONDITION_NUMBER`` the loss
    accepts it, since both measure with :func:`condition_number`.

    Args:
        T: ``(C, C)`` row-stochastic transition matrix (converted to float64).
        max_condition: the largest acceptable 1-norm condition number (dimensionless); by default the
            loss's own limit, :data:`MAX_CONDITION_NUMBER`.

    Returns:
        ``lam`` in ``{0.0, 0.01, ..., 1.0}`` (exactly ``step / 100``).

    Raises:
        ValueError: ``T`` is not a square, non-empty matrix.
    """
    T = _square(T)
    eye = torch.eye(T.shape[0], dtype=torch.float64, device=T.device)
    for step in range(101):
        lam = step / 100
        cond = condition_number((1 - lam) * T + lam * eye)
        if math.isfinite(cond) and cond <= max_condition:
            return lam
    return 1.0


def _square(T: torch.Tensor) -> torch.Tensor:
    """``T`` in float64 after checking that it is a square, non-empty matrix (``ValueError`` if not)."""
    T = torch.as_tensor(T, dtype=torch.float64)
    if T.dim() != 2 or T.shape[0] != T.shape[1] or T.numel() == 0:
        raise ValueError(f"T must be a square, non-empty C x C matrix, got shape {tuple(T.shape)}")
    return T
