"""Fake tensors and autocast of the ops ``torch.ops.pyrobust.*``, registered on import (by ``pyrobust._ops``,
where the extension loaded):

* ``register_fake``: shapes and dtypes for ``torch.compile`` / fake tensors, checked as the kernels check
  them (``kernels/include/pyrobust/checks.h``);
* ``register_autocast`` on CPU: under ``torch.autocast("cpu")`` the losses run in float32 (the CPU kernels
  take float32/float64). On CUDA the kernels take float16/bfloat16 directly.
"""

from __future__ import annotations

import torch

from pyrobust._ops import (
    _LEARNABLE_OP,
    _LOSS_OPS,
    _TABLE_GRAD_OP,
    REDUCTIONS,
    _table_dtype,
)

__all__: list[str] = []


def _fake_loss(logits, target, table, ignore_index=-100, reduction=1, *, T_t=None, weight=None, offset=None):
    # Shapes raise ValueError, as the kernels (kernels/include/pyrobust/checks.h) and F.cross_entropy.
    torch._check_value(logits.dim() in (2, 3), lambda: f"logits must be (B, C) or (N, C, S), got {logits.dim()}-D")
    torch._check_value(target.shape == logits.shape[:1] + logits.shape[2:], lambda: "target must have shape (B,) or (N, S)")
    C = logits.shape[1]
    torch._check_value(table.shape == (C, C), lambda: "table must be C x C")
    for name, t, shape in (("T_t", T_t, (C, C)), ("weight", weight, (C,)), ("offset", offset, (C,))):
        if t is not None:
            torch._check_value(t.shape == shape, lambda name=name, shape=shape: f"{name} must have shape {shape}")
    torch._check(reduction in REDUCTIONS.values(), lambda: f"reduction must be 0, 1 or 2, got {reduction}")
    loss_shape = target.shape if reduction == REDUCTIONS["none"] else ()
    return logits.new_empty(loss_shape, dtype=_table_dtype(logits.dtype))


def _fake_forward_kernel(logits, target, log_T_t, ignore_index, reduction, T_t=None, weight=None):
    loss = _fake_loss(logits, target, log_T_t, ignore_index, reduction, T_t=T_t, weight=weight)
    return loss, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _fake_table_grad_kernel(logits, target, log_T_t, ignore_index, reduction, T_t, weight, row_grad, wrt_log):
    loss, grad = _fake_forward_kernel(logits, target, log_T_t, ignore_index, reduction, T_t, weight)
    return loss, grad, torch.empty_like(log_T_t, memory_format=torch.contiguous_format)


def _fake_backward_kernel(logits, target, T_inv, ignore_index, reduction, weight=None, offset=None):
    loss = _fake_loss(logits, target, T_inv, ignore_index, reduction, weight=weight, offset=offset)
    return loss, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _fake_learnable_kernel(logits, target, theta_t, ignore_index, reduction, weight, row_grad):
    loss, grad = _fake_forward_kernel(logits, target, theta_t, ignore_index, reduction, None, weight)
    return loss, grad, torch.empty_like(theta_t, memory_format=torch.contiguous_format)


def _fake_scale_grad(grad, grad_loss):
    torch._check(grad_loss.dim() == 0 or grad_loss.shape == grad.shape[:1] + grad.shape[2:],
                 lambda: "grad_loss must be () or the per-row losses' shape")
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


for _op in (*_LOSS_OPS, "pyrobust::forward_corrected_ce_learnable"):
    torch.library.register_autocast(_op, "cpu", torch.float32)
torch.library.register_fake("pyrobust::forward_corrected_ce")(
    lambda logits, target, log_T_t, ignore_index=-100, reduction=1, *, T_t=None, weight=None: _fake_loss(
        logits, target, log_T_t, ignore_index, reduction, T_t=T_t, weight=weight
    )
)
torch.library.register_fake("pyrobust::backward_corrected_ce")(
    lambda logits, target, T_inv, ignore_index=-100, reduction=1, *, weight=None, offset=None: _fake_loss(
        logits, target, T_inv, ignore_index, reduction, weight=weight, offset=offset
    )
)
torch.library.register_fake("pyrobust::_forward_corrected_ce")(_fake_forward_kernel)
torch.library.register_fake(_TABLE_GRAD_OP)(_fake_table_grad_kernel)
torch.library.register_fake("pyrobust::_backward_corrected_ce")(_fake_backward_kernel)
torch.library.register_fake("pyrobust::forward_corrected_ce_learnable")(
    lambda logits, target, theta_t, ignore_index=-100, reduction=1, *, weight=None: _fake_loss(
        logits, target, theta_t, ignore_index, reduction, weight=weight
    )
)
torch.library.register_fake(_LEARNABLE_OP)(_fake_learnable_kernel)
torch.library.register_fake("pyrobust::scale_grad")(_fake_scale_grad)
torch.library.register_fake("pyrobust::scale_grad_")(lambda grad, grad_loss: None)
torch.library.register_fake("pyrobust::dropout_mask")(
    lambda self, p, *, generator=None: torch.empty_like(self, memory_format=torch.contiguous_format)
)
