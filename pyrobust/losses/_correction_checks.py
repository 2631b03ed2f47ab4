"""Checks of the arguments only the corrected losses take: T at a call (also under ``torch.compile``), a table's
device, ``clip``, ``identity_mix``, and ``ignore_index`` with class probabilities."""

from __future__ import annotations

import torch

from pyrobust._checks import STOCHASTIC_ATOL, check_transition_matrix


def _check_same_device(name: str, M: torch.Tensor, logits: torch.Tensor) -> None:
    if M.device != logits.device:
        raise ValueError(f"logits are on {logits.device} but {name} is on {M.device}")


def _check_clip(clip: float) -> float:
    if not 0.0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip}")
    return float(clip)


def _check_identity_mix(identity_mix: float) -> float:
    if not 0.0 <= identity_mix <= 1.0:
        raise ValueError(f"identity_mix must lie in [0, 1], got {identity_mix}")
    return float(identity_mix)


def _check_T_call(T: torch.Tensor, num_classes: int, logits: torch.Tensor) -> torch.Tensor:
    """T of a function call: fully checked in eager mode (:func:`check_transition_matrix`); under
    ``torch.compile`` its shape is checked while tracing and its values by one device-side assertion, so
    that the check costs no graph break (a ``RuntimeError`` naming the rule instead of the ``ValueError``)."""
    if not torch.compiler.is_compiling():
        T = check_transition_matrix(T, num_classes)
        _check_same_device("T", T, logits)
        return T
    if T.dim() != 2 or T.shape[0] != T.shape[1] or T.shape[0] != num_classes or not T.is_floating_point():
        raise ValueError(f"T must be a floating-point {num_classes} x {num_classes} matrix, got {tuple(T.shape)}")
    _check_same_device("T", T, logits)
    Td = T.detach().to(torch.float64)
    ok = torch.isfinite(Td).all() & (Td >= -STOCHASTIC_ATOL).all() & ((Td.sum(1) - 1).abs() <= STOCHASTIC_ATOL).all()
    torch._assert_async(ok, "T is not a valid transition matrix: finite, entries >= 0, rows summing to 1")
    return T


def _check_soft(soft: bool, ignore_index: int) -> None:
    if soft and ignore_index != -100:
        raise ValueError("ignore_index is not supported for class-probability targets (F.cross_entropy neither)")
