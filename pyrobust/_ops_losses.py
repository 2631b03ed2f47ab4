"""The corrected losses on whichever implementation ``pyrobust.backend()`` names: ``forward_loss``,
``learnable_forward_loss``, ``backward_loss`` and ``corrected_loss`` (imported from ``pyrobust._ops``).

They run the compiled op, or the reference (``pyrobust._reference``) where the compiled kernels lack a
feature: the gradient with respect to T is fused on CPU only; elsewhere the reference runs, with a one-time
warning.
"""

from __future__ import annotations

import torch

from pyrobust import _ops, _reference
from pyrobust._ops import (
    _LEARNABLE_OP,
    _TABLE_GRAD_OP,
    REDUCTIONS,
    _table_dtype,
    _warn_once,
    backend,
)

__all__ = ["backward_loss", "corrected_loss", "forward_loss", "learnable_forward_loss"]


# The overloads themselves, not the packets: one lookup less per call. They exist where the extension loaded.
_OPS = (
    {kind: getattr(torch.ops.pyrobust, f"{kind}_corrected_ce").default for kind in ("forward", "backward")}
    if _ops._C is not None
    else {}
)
# Device types whose compiled kernels fuse the gradient with respect to T (decided once, at import).
_TABLE_GRAD_FUSED = {
    device_type: _ops._C is not None and all(torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
                                             for op in (_TABLE_GRAD_OP, _LEARNABLE_OP))
    for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA"))
}
if _ops._C is not None:
    _OPS["learnable"] = torch.ops.pyrobust.forward_corrected_ce_learnable.default


def _fused(device: torch.device, table_grad: bool) -> bool:
    """Whether the compiled op runs for these tensors: a compiled backend, and one that fuses the gradient
    with respect to T if it is asked for (otherwise the reference runs, with a one-time warning)."""
    impl = backend(device)
    if impl == "reference":
        return False
    if table_grad and not _TABLE_GRAD_FUSED.get(device.type, False):
        _warn_once(
            f"pyrobust: the gradient with respect to T is fused on CPU only; on {device.type} the forward "
            "correction with a learnable T, or a T that requires grad, runs the pure-PyTorch reference."
        )
        return False
    return True


def _kernel_logits(logits: torch.Tensor) -> torch.Tensor:
    if backend(logits.device) == "cpp" and logits.dtype not in (torch.float32, torch.float64):
        return logits.float()  # the CPU kernels run float16/bfloat16 in float32; autograd casts back
    return logits


def _as_table(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype=dtype).contiguous()


def _rows(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K-dimensional logits (N, C, S) and targets (N, S) as rows (N S, C) and (N S,): a copy."""
    if logits.dim() == 2:
        return logits, target
    return logits.movedim(1, -1).reshape(-1, logits.shape[1]), target.reshape(-1)


def _per_row(loss: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss.reshape(target.shape) if reduction == "none" else loss


def forward_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    log_T_t: torch.Tensor,
    reduction: str,
    ignore_index: int,
    *,
    T_t: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The forward correction of class indices, reduced as ``F.cross_entropy`` reduces it.

    ``loss_i = w[y_i] (lse(h_i) - lse(h_i + log T[:, y_i]))``; a mean divides by the number of rows not
    ignored, or by the sum of their weights. Inputs are those of ``pyrobust.losses.corrected`` after its
    checks (target values are checked here, by the CPU kernel or the reference).

    Args:
        logits: (B, C) floating point, or (N, C, S) (K-dimensional inputs, positions flattened: the CPU
            kernels take them as they lie, elsewhere they are copied into rows); float16/bfloat16 run in
            float32 on CPU.
        target: (B,) or (N, S) int64 class indices or ``ignore_index``.
        log_T_t: (C, C) ``log T`` transposed (``-inf`` where T is 0), on the logits' device; may require
            grad (a learnable T: its gradient is fused on CPU).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: target value of rows that contribute 0 loss and 0 gradient.
        T_t: (C, C) ``exp(log_T_t)`` (``T`` transposed), a cache of the CPU kernel's one-exp path, or None;
            may require grad instead of ``log_T_t`` (then the gradient is ``d loss / d T``, exact at zeros of
            T), not both.
        weight: (C,) class weights, or None.

    Returns:
        The loss, () or the target's shape for ``"none"``: float64 for float64 logits, float32 otherwise.

    Raises:
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (CPU kernel and reference; the
            CUDA kernel stops with a device-side assertion instead, as ``F.cross_entropy`` on CUDA).
    """
    dtype = _table_dtype(logits.dtype)
    table_grad = log_T_t.requires_grad or (T_t is not None and T_t.requires_grad)
    fused = _fused(logits.device, table_grad)
    h, y = logits, target
    if logits.dim() == 3 and not (fused and not table_grad and backend(logits.device) == "cpp"):
        h, y = _rows(logits, target)
    if fused:
        loss = _OPS["forward"](
            _kernel_logits(h).contiguous(), y.contiguous(), log_T_t.to(dtype=dtype).contiguous(),
            ignore_index, REDUCTIONS[reduction], T_t=_as_table(T_t, dtype), weight=_as_table(weight, dtype),
        )
        return _per_row(loss, target, reduction)
    if T_t is not None and T_t.requires_grad:
        loss = _reference.forward_corrected_ce_T(h, y, T_t.t(), ignore_index, weight)
    else:
        loss = _reference.forward_corrected_ce(h, y, log_T_t, ignore_index, weight)
    return _per_row(_reference.reduce(loss, y, reduction, ignore_index, weight), target, reduction)


def learnable_forward_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    theta_t: torch.Tensor,
    reduction: str,
    ignore_index: int,
    *,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The forward correction with a learnable ``T = softmax(theta, dim=1)``, reduced as ``F.cross_entropy``.

    ``log T[j, y] = log_softmax(theta_t, dim=0)[y, j]``: ``theta_t`` is ``theta`` transposed (what the kernel
    reads; the loss module keeps ``theta`` column-major so that it is contiguous). On CPU one fused op
    computes the loss and its gradients with respect to the logits and ``theta_t``; elsewhere the reference,
    through ``torch.log_softmax`` (with a one-time warning).

    Args:
        logits: (B, C) floating point (K-dimensional ones are copied into rows).
        target: (B,) (or (N, S)) int64 class indices or ``ignore_index``.
        theta_t: (C, C) free logits of T, transposed; cast to the loss dtype.
        reduction, ignore_index, weight: as :func:`forward_loss`.

    Returns:
        The loss, () or the target's shape for ``"none"``: float64 for float64 logits, float32 otherwise.

    Raises:
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index``.
    """
    dtype = _table_dtype(logits.dtype)
    h, y = _rows(logits, target)
    theta_t = theta_t.to(dtype=dtype)
    if _fused(logits.device, table_grad=True):
        loss = _OPS["learnable"](_kernel_logits(h).contiguous(), y.contiguous(), theta_t.contiguous(), ignore_index,
                                 REDUCTIONS[reduction], weight=_as_table(weight, dtype))
        return _per_row(loss, target, reduction)
    loss = _reference.forward_corrected_ce(h, y, torch.log_softmax(theta_t, dim=0), ignore_index, weight)
    return _per_row(_reference.reduce(loss, y, reduction, ignore_index, weight), target, reduction)


def backward_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    T_inv: torch.Tensor,
    reduction: str,
    ignore_index: int,
    *,
    weight: torch.Tensor | None = None,
    offset: torch.Tensor | None = None,
    clip: float = 0.0,
) -> torch.Tensor:
    """The backward correction of class indices, reduced as ``F.cross_entropy`` reduces it.

    ``loss_i = sum_j w_j (T_inv[y_i, j] + offset_j) (-log softmax(h_i)_j)``; a mean divides by the number
    of rows not ignored, or by the sum of the weights of their classes. ``clip > 0`` (probabilities clipped
    to ``[clip, 1 - clip]``) and a ``T_inv`` that requires grad run the reference, by design; the rest is
    fused. Shapes, dtypes and errors as :func:`forward_loss`.
    """
    dtype = _table_dtype(logits.dtype)
    fused = not clip and not T_inv.requires_grad and _fused(logits.device, table_grad=False)
    h, y = logits, target
    if logits.dim() == 3 and not (fused and backend(logits.device) == "cpp"):
        h, y = _rows(logits, target)
    if fused:
        loss = _OPS["backward"](
            _kernel_logits(h).contiguous(), y.contiguous(), T_inv.to(dtype=dtype).contiguous(),
            ignore_index, REDUCTIONS[reduction], weight=_as_table(weight, dtype), offset=_as_table(offset, dtype),
        )
        return _per_row(loss, target, reduction)
    loss = _reference.backward_corrected_ce(h, y, T_inv, ignore_index, clip, weight, offset)
    return _per_row(_reference.reduce(loss, y, reduction, ignore_index, weight), target, reduction)


def corrected_loss(
    kind: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    table: torch.Tensor,
    reduction: str,
    ignore_index: int,
    clip: float = 0.0,
) -> torch.Tensor:
    """:func:`forward_loss` (``kind="forward"``, ``table = log_T_t``) or :func:`backward_loss`
    (``kind="backward"``, ``table = T_inv``, with ``clip``), without weights."""
    if kind == "forward":
        return forward_loss(logits, target, table, reduction, ignore_index)
    return backward_loss(logits, target, table, reduction, ignore_index, clip=clip)
