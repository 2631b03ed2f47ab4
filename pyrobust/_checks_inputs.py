"""Validation of the inputs of every loss of pyrobust: logits, targets and the arguments that go with them
(re-exported by :mod:`pyrobust._checks`, whence callers import them).

* :func:`check_logits_and_target`, :func:`check_targets`, :func:`check_reduction`: the inputs of every
  loss (corrected, reference and baselines), raising the exception types of ``F.cross_entropy``:

  ==========================================  ==========================  ============================
  mistake                                     ``F.cross_entropy`` (CPU)    pyrobust
  ==========================================  ==========================  ============================
  class indices not int64/uint8 (float32,     ``RuntimeError``            :class:`DtypeError` (a
  int32)                                                                  ``TypeError`` and a
                                                                          ``RuntimeError``; the message
                                                                          says ``.long()``)
  target of B' != B rows                      ``ValueError``              ``ValueError``
  target class ``>= C``                       ``IndexError``              ``IndexError``
  target class ``< 0``, not ``ignore_index``  ``IndexError``              ``IndexError``
  ==========================================  ==========================  ============================

  On CUDA, ``F.cross_entropy`` and the compiled CUDA kernel stop an out-of-range class with a device-side
  assertion (no recoverable exception: the targets are not read on the host).
* :func:`check_input_and_target`: the shapes of ``F.cross_entropy`` (unbatched ``(C,)``, ``(N, C)``,
  ``(N, C, d1, ..., dK)``; class indices or class probabilities), for the corrected losses;
* :func:`check_weight`, :func:`check_label_smoothing`: their ``weight`` and ``label_smoothing``.
"""

from __future__ import annotations

import torch

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


#: dtypes of class-index targets, as ``F.cross_entropy`` takes them ("Long or Byte").
INDEX_DTYPES = (torch.int64, torch.uint8)


def _check_index_dtype(target: torch.Tensor) -> None:
    if target.dtype not in INDEX_DTYPES:
        hint = " (class probabilities, a float target, have the logits' shape)" if target.is_floating_point() else ""
        raise DtypeError(f"target must hold int64 (or uint8) class indices, got {target.dtype}: pass target.long(){hint}")


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor, reduction: str | None = None) -> int:
    """Check the inputs of a classification loss and return the number of classes ``C``.

    The one check of every loss of pyrobust (the corrected losses of :mod:`pyrobust.losses.corrected`, their
    plain-PyTorch reference :mod:`pyrobust._reference`, the baselines of :mod:`pyrobust.losses.baselines`),
    so that each raises the same exception, with the same message, for the same mistake; the types are
    those of ``F.cross_entropy`` (CPU, torch 2.13).

    Args:
        logits: ``(B, C)`` floating-point scores, ``C >= 1``.
        target: ``(B,)`` int64 (or uint8) class indices, on the logits' device (their range is checked by
            :func:`check_targets`, which reads their values).
        reduction: also checked by :func:`check_reduction` unless None.

    Returns:
        ``C``, the number of classes.

    Raises:
        TypeError: ``logits`` or ``target`` is not a tensor.
        DtypeError: (a ``TypeError`` and a ``RuntimeError``, as ``F.cross_entropy`` raises) ``logits`` is not
            floating point, or ``target`` is neither int64 nor uint8 (the message says ``.long()``).
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
    if target.shape == logits.shape and target.is_floating_point():
        raise ValueError(f"this loss takes class indices of shape ({logits.shape[0]},), not class probabilities")
    num_classes, _ = check_input_and_target(logits, target)
    return num_classes


def check_input_and_target(input: torch.Tensor, target: torch.Tensor, reduction: str | None = None) -> tuple[int, bool]:
    """Check the inputs of a loss shaped as ``F.cross_entropy`` shapes them; return ``(C, soft)``.

    ``input``: unbatched ``(C,)``, batched ``(N, C)``, or ``(N, C, d1, ..., dK)`` (e.g. a segmentation's
    per-pixel logits), floating point. ``target``: class indices of shape ``()``, ``(N,)`` or
    ``(N, d1, ..., dK)``, int64 or uint8; or, exactly when it has the input's shape, class probabilities
    (``soft`` targets, floating point), as ``F.cross_entropy`` decides.

    Returns:
        ``C`` (``input.shape[1]``, or ``input.shape[0]`` unbatched) and whether the targets are soft.

    Raises:
        TypeError: ``input`` or ``target`` is not a tensor.
        DtypeError: ``input`` is not floating point; soft targets are not floating point; class indices
            are neither int64 nor uint8 (the message says ``.long()``, also for a float target of index
            shape).
        ValueError: ``input`` is 0-D or has no class; ``target`` has neither shape (a batch-size mismatch
            is a ``ValueError`` in ``F.cross_entropy`` too); the two lie on different devices; ``reduction``
            is unknown.
    """
    if reduction is not None:
        check_reduction(reduction)
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"logits and target must be tensors, got {type(input).__name__} and {type(target).__name__}")
    if input.dim() == 0:
        raise ValueError("logits must have a class dimension: (C,), (N, C) or (N, C, d1, ..., dK), got a scalar")
    if not input.is_floating_point():
        raise DtypeError(f"logits must be floating point, got {input.dtype}")
    batched = input.dim() >= 2
    C = input.shape[1] if batched else input.shape[0]
    soft = target.shape == input.shape
    if soft:
        if not target.is_floating_point():
            raise DtypeError(
                f"a target of the logits' shape {tuple(input.shape)} holds class probabilities and must be "
                f"floating point, got {target.dtype}; class indices have shape "
                f"{tuple(input.shape[:1]) + tuple(input.shape[2:]) if batched else ()}"
            )
    else:
        _check_index_dtype(target)
        expected = (input.shape[:1] + input.shape[2:]) if batched else torch.Size([])
        if target.shape != expected:
            raise ValueError(
                f"target must have shape {tuple(expected)} to match logits {tuple(input.shape)}, got "
                f"{tuple(target.shape)} (class indices; class probabilities have the logits' shape)"
            )
    if target.device != input.device:
        raise ValueError(f"logits are on {input.device} but target is on {target.device}")
    if C == 0:
        raise ValueError("logits have 0 classes")
    return C, soft


def check_weight(weight: torch.Tensor | None, num_classes: int, device: torch.device) -> torch.Tensor | None:
    """Return ``weight`` (or None) after checking it as ``F.cross_entropy``'s per-class weights.

    Args:
        weight: ``(C,)`` floating-point weight of each class (any float dtype: cast to the loss's), or None.
        num_classes: ``C``.
        device: the logits' device.

    Raises:
        TypeError: ``weight`` is not a tensor.
        DtypeError: ``weight`` is not floating point.
        ValueError: ``weight`` is not of shape ``(C,)`` or not on ``device``.
    """
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a tensor or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise DtypeError(f"weight must be floating point, got {weight.dtype}")
    if weight.shape != (num_classes,):
        raise ValueError(
            f"weight must have shape ({num_classes},), one weight per class, got {tuple(weight.shape)}"
        )
    if weight.device != device:
        raise ValueError(f"logits are on {device} but weight is on {weight.device}")
    return weight


def check_label_smoothing(label_smoothing: float) -> float:
    """Return ``label_smoothing`` as a float after checking that it lies in ``[0, 1]``.

    Raises:
        ValueError: it lies outside ``[0, 1]`` (``F.cross_entropy`` raises a ``RuntimeError`` above 1).
    """
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    return float(label_smoothing)


def check_targets(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Check that every target is a class in ``[0, num_classes)`` or ``ignore_index``.

    The message is that of the compiled CPU kernel (``kernels/cpu/corrected_ce.cpp``), which checks the
    same in C++ (``TORCH_CHECK_INDEX``, also an ``IndexError``). It reads the targets' values: on CUDA a
    synchronisation, which is why the compiled CUDA kernel does not call it and stops with a device-side
    assertion instead, as ``F.cross_entropy`` does on CUDA.

    Args:
        target: class indices (any shape; int64 or uint8).
        num_classes: ``C``.
        ignore_index: the target value of rows that do not count (``-100`` by default in the losses).

    Raises:
        IndexError: a target other than ``ignore_index`` is negative or ``>= num_classes``, as
            ``F.cross_entropy`` on CPU raises ("Target 5 is out of bounds.").
    """
    target = target.reshape(-1)
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise IndexError(
            f"target[{i}] = {int(target[i])} is out of range for {num_classes} classes "
            f"(ignore_index = {ignore_index})"
        )
