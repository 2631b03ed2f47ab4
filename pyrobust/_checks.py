"""Validation of the inputs of pyrobust: the one place every entry point checks them.

* :func:`check_transition_matrix`: ``T[i, j] = p(noisy = j | clean = i)`` (paper, section 4), a square,
  row-stochastic matrix;
* :func:`check_logits_and_target`, :func:`check_targets`, :func:`check_reduction`: the inputs of every
  loss (corrected, reference and baselines), raising the exception types of ``F.cross_entropy``:

  ==========================================  ==========================  ============================
  mistake                                     ``F.cross_entropy`` (CPU)    pyrobust
  ==========================================  ==========================  ============================
  target not int64 (float32, int32)           ``RuntimeError``            :class:`DtypeError` (a
                                                                          ``TypeError`` and a
                                                                          ``RuntimeError``)
  target of B' != B rows                      ``ValueError``              ``ValueError``
  target class ``>= C``                       ``IndexError``              ``IndexError``
  target class ``< 0``, not ``ignore_index``  ``IndexError``              ``IndexError``
  ==========================================  ==========================  ============================

  On CUDA, ``F.cross_entropy`` and the compiled CUDA kernel stop an out-of-range class with a device-side
  assertion (no recoverable exception: the targets are not read on the host).
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


#: The reductions of the losses, those of ``F.cross_entropy`` (``at::Reduction``: 0 none, 1 mean, 2 sum).
REDUCTIONS = ("none", "mean", "sum")


class DtypeError(TypeError, RuntimeError):
    """A tensor of the wrong dtype given to a loss.

    A ``TypeError``, as Python reports a wrong type, and a ``RuntimeError``, as ``F.cross_entropy`` reports a
    target of the wrong dtype ("expected target dtype to be Long ..."): code that catches either, or
    compares with ``F.cross_entropy``, sees what it expects. (NumPy's ``AxisError`` is a ``ValueError`` and
    an ``IndexError`` in the same way.)
    """


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` after checking that it is ``"none"``, ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: any other value (``F.cross_entropy`` raises ``ValueError`` too).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor, reduction: str | None = None) -> int:
    """Check the inputs of a classification loss and return the number of classes ``C``.

    The one check of every loss of pyrobust (the corrected losses of :mod:`pyrobust.losses.corrected`, their
    plain-PyTorch reference :mod:`pyrobust._reference`, the baselines of :mod:`pyrobust.losses.baselines`),
    so that each raises the same exception, with the same message, for the same mistake; the types are
    those of ``F.cross_entropy`` (CPU, torch 2.13).

    Args:
        logits: ``(B, C)`` floating-point scores, ``C >= 1``.
        target: ``(B,)`` int64 class indices, on the logits' device (their range is checked by
            :func:`check_targets`, which reads their values).
        reduction: also checked by :func:`check_reduction` unless None.

    Returns:
        ``C``, the number of classes.

    Raises:
        TypeError: ``logits`` or ``target`` is not a tensor.
        DtypeError: (a ``TypeError`` and a ``RuntimeError``, as ``F.cross_entropy`` raises) ``logits`` is not
            floating point, or ``target`` is not int64.
        ValueError: ``logits`` is not 2-D or has no class, ``target`` is not of shape ``(B,)`` (``ValueError``,
            as ``F.cross_entropy`` raises for a batch-size mismatch), the two lie on different devices, or
            ``reduction`` is unknown.
    """
    if reduction is not None:
        check_reduction(reduction)
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"logits and target must be tensors, got {type(logits).__name__} and {type(target).__name__}"
        )
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (B, C), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise DtypeError(f"logits must be floating point, got {logits.dtype}")
    if target.dtype != torch.int64:
        raise DtypeError(f"target must hold int64 class indices, got {target.dtype}")
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"logits are on {logits.device} but target is on {target.device}")
    if logits.shape[1] == 0:
        raise ValueError("logits have 0 classes")
    return logits.shape[1]


def check_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Check that every target is a class in ``[0, num_classes)`` or ``ignore_index``.

    The message is that of the compiled CPU kernel (``kernels/cpu/corrected_ce.cpp``), which checks the
    same in C++ (``TORCH_CHECK_INDEX``, also an ``IndexError``). It reads the targets' values: on CUDA a
    synchronisation, which is why the compiled CUDA kernel does not call it and stops with a device-side
    assertion instead, as ``F.cross_entropy`` does on CUDA.

    Args:
        target: ``(B,)`` int64 class indices.
        num_classes: ``C``.
        ignore_index: the target value of rows that do not count (``-100`` by default in the losses).

    Raises:
        IndexError: a target other than ``ignore_index`` is negative or ``>= num_classes``, as
            ``F.cross_entropy`` on CPU raises ("Target 5 is out of bounds.").
    """
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise IndexError(
            f"target[{i}] = {int(target[i])} is out of range for {num_classes} classes "
            f"(ignore_index = {ignore_index})"
        )


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
