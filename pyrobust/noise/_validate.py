"""Checks and conversions shared by the noise models (private).

Each helper returns its argument normalised (a Python ``int``/``float``, a float64 CPU tensor, a 1-D int64
CPU tensor) or raises ``ValueError``/``TypeError`` with a message naming the argument.
"""

from __future__ import annotations

import numbers
from typing import TypeVar

import numpy as np
import torch

from pyrobust._checks import check_transition_matrix

Labels = TypeVar("Labels", torch.Tensor, np.ndarray)


def _validated(T: torch.Tensor | np.ndarray, *, name: str = "T") -> torch.Tensor:
    T = torch.as_tensor(T)
    if T.is_floating_point():
        T = T.detach().to(device="cpu", dtype=torch.float64)
    return check_transition_matrix(T, name=name)


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def _check_noise_level(N: float) -> float:
    if isinstance(N, bool) or not isinstance(N, numbers.Real) or not 0.0 <= float(N) < 1.0:
        raise ValueError(f"noise level N must be a number in [0, 1), got {N!r}")
    return float(N)


def _check_class(c: int, C: int, what: str) -> int:
    if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < C:
        raise ValueError(f"{what}: class {c!r} is not an integer in [0, {C})")
    return int(c)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _as_cpu_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _labels_as_tensor(labels: torch.Tensor | np.ndarray, C: int, name: str) -> torch.Tensor:
    """``labels`` as a 1-D int64 CPU tensor with values in ``[0, C)``, or a clear error."""
    if isinstance(labels, torch.Tensor):
        y = labels.detach().cpu()
    else:
        array = np.asarray(labels)
        if array.dtype.kind not in "iu" and array.size:
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
        y = torch.from_numpy(array.astype(np.int64, copy=False))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}")
    y = y.to(torch.int64)
    if y.numel() and (y.min() < 0 or y.max() >= C):
        bad = y[(y < 0) | (y >= C)][0].item()
        raise ValueError(f"{name} holds class {bad} outside [0, {C}) for a {C} x {C} transition matrix")
    return y


def _like(values: torch.Tensor, reference: Labels) -> Labels:
    """``values`` in the container, dtype and device of ``reference``."""
    if isinstance(reference, torch.Tensor):
        return values.to(device=reference.device, dtype=reference.dtype)
    reference = np.asarray(reference)
    return values.numpy().astype(reference.dtype, copy=False)
