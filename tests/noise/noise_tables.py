"""Expected transition matrices written entry by entry, independently of pyrobust.noise (a helper of the
noise tests, imported as a module like tests/data/datafiles.py)."""

from __future__ import annotations

import numpy as np
import torch


def expected(C: int, flips: dict[int, int], N: float) -> np.ndarray:
    """T written entry by entry from a flip table: T[a, a] = 1 - N, T[a, b] = N, other rows identity."""
    T = np.eye(C)
    for a, b in flips.items():
        T[a, a], T[a, b] = 1 - N, N
    return T


def assert_valid(T: torch.Tensor, C: int) -> None:
    assert isinstance(T, torch.Tensor) and T.dtype == torch.float64 and T.shape == (C, C)
    assert (T >= 0).all()
    torch.testing.assert_close(T.sum(dim=1), torch.ones(C, dtype=torch.float64), rtol=0, atol=1e-12)
