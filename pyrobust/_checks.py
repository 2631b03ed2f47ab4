"""Validation of transition matrices: the one place every entry point checks T.

``T[i, j] = p(noisy = j | clean = i)`` (paper, section 4): a square, row-stochastic matrix.
"""

from __future__ import annotations

import torch

#: Largest allowed deviation of a row sum of T from 1 (absolute), and of an entry below 0.
STOCHASTIC_ATOL = 1e-5


def check_transition_matrix(
    T: torch.Tensor, num_classes: int | None = None, *, name: str = "T", atol: float = STOCHASTIC_ATOL
) -> torch.Tensor:
    """Return ``T`` as a tensor after checking that it is a valid transition matrix.

    Checks: 2-D and square (``C x C``, and ``C == num_classes`` when given), floating point, finite, entries
    ``>= -atol`` and every row summing to 1 within ``atol``. Raises ``ValueError``/``TypeError`` naming
    the first problem found; never returns a silently repaired matrix.
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
