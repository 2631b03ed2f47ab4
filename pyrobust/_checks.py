"""Validation of the inputs of pyrobust: the one place every entry point checks them.

* :func:`check_transition_matrix`: ``T[i, j] = p(noisy = j | clean = i)`` (paper, section 4), a square,
  row-stochastic matrix; :func:`check_inverse`: its inverse, the table of the backward correction (here);
* the inputs of every loss: logits and targets, ``reduction``, ``weight``, ``label_smoothing``
  (:mod:`pyrobust._checks_inputs`, re-exported here).
"""

from __future__ import annotations

import torch

from pyrobust._checks_inputs import (  # noqa: F401  (re-exported: every entry point imports them from here)
    INDEX_DTYPES,
    REDUCTIONS,
    DtypeError,
    check_input_and_target,
    check_label_smoothing,
    check_logits_and_target,
    check_reduction,
    check_targets,
    check_weight,
)

#: Largest allowed deviation of a row sum of T from 1 (absolute), and of an entry below 0.
STOCHASTIC_ATOL = 1e-5


def check_transition_matrix(
    T: torch.Tensor, num_classes: int | None = None, *, name: str = "T", atol: float = STOCHASTIC_ATOL
) -> torch.Tensor:
    """Return ``T`` as a tensor after checking that it is a valid transition matrix.

    Checks: 2-D and square (``C x C``, and ``C == num_classes`` when given), floating point, finite, entries
    ``>= -atol`` and every row summing to 1 within ``atol`` (paper, section 4: row ``i`` is the distribution
    of the noisy label given the clean label ``i``). Never returns a silently repaired matrix.

    Args:
        T: ``(C, C)`` floating-point tensor, or an array-like (converted to float64).
        num_classes: the ``C`` it must have (the logits' number of classes), or None.
        name: how messages call it (``"T"``, ``"T_hat"``).
        atol: tolerance (absolute, in probability) of the row sums and of negative entries.

    Returns:
        ``T`` (the given tensor, unchanged, or the converted array-like).

    Raises:
        TypeError: ``T`` is not array-like, or not floating point.
        ValueError: ``T`` is not square, not ``num_classes x num_classes``, empty, not finite, has an entry
            below ``-atol`` or a row whose sum differs from 1 by more than ``atol``; the message names the
            first such entry or row.
    """
    if not isinstance(T, torch.Tensor):
        try:
            T = torch.as_tensor(T, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array-like of floats, got {type(T).__name__}") from err
    if T.dim() != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"{name} must be a square C x C matrix, got shape {tuple(T.shape)}")
    if num_classes is not None and T.shape[0] != num_classes:
        raise ValueError(
            f"{name} is {T.shape[0]} x {T.shape[1]} but the logits have {num_classes} classes"
        )
    if not T.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {T.dtype}")
    if T.numel() == 0:
        raise ValueError(f"{name} is empty")
    Td = T.detach().to(torch.float64)
    if not torch.isfinite(Td).all():
        bad = torch.nonzero(~torch.isfinite(Td))[0].tolist()
        raise ValueError(f"{name} has a non-finite entry at {tuple(bad)}: {Td[bad[0], bad[1]].item()}")
    if (Td < -atol).any():
        bad = torch.nonzero(Td < -atol)[0].tolist()
        raise ValueError(
            f"{name} has a negative entry at {tuple(bad)}: {Td[bad[0], bad[1]].item():.6g} "
            "(a transition matrix holds probabilities)"
        )
    row_err = (Td.sum(dim=1) - 1).abs()
    if (row_err > atol).any():
        i = int(torch.argmax(row_err))
        raise ValueError(
            f"{name} is not row-stochastic: row {i} sums to {Td[i].sum().item():.8g} "
            f"(tolerance {atol:g}); T[i, j] = p(noisy=j | clean=i), so every row must sum to 1"
        )
    return T


def check_inverse(T_inv: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Return ``T_inv`` as a tensor after checking it as the table of the backward correction (Theorem 1).

    Not checked for conditioning: a ``T_inv`` given directly is the caller's choice.

    Args:
        T_inv: ``(C, C)`` floating-point inverse of a transition matrix, or an array-like (converted to
            float64).
        num_classes: ``C``, the logits' number of classes.

    Returns:
        ``T_inv`` as a tensor.

    Raises:
        ValueError: ``T_inv`` is not ``C x C`` or has a non-finite entry.
        TypeError: ``T_inv`` is not floating point.
    """
    if not isinstance(T_inv, torch.Tensor):
        T_inv = torch.as_tensor(T_inv, dtype=torch.float64)
    if T_inv.dim() != 2 or T_inv.shape != (num_classes, num_classes):
        raise ValueError(
            f"T_inv must be {num_classes} x {num_classes} for logits with {num_classes} classes, "
            f"got shape {tuple(T_inv.shape)}"
        )
    if not T_inv.is_floating_point():
        raise TypeError(f"T_inv must be floating point, got {T_inv.dtype}")
    if not bool(torch.isfinite(T_inv).all()):
        raise ValueError("T_inv has non-finite entries")
    return T_inv
