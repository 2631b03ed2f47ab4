"""The compiled ops ``torch.ops.pyrobust.*``: loading, fake tensors, autograd, autocast, ``backend()``, and
``corrected_loss()``, which runs a corrected loss on whichever implementation ``backend()`` names.

The schemas live in ``kernels/ops.cpp`` and the kernels in ``kernels/cpu`` and ``kernels/cuda``; importing
``pyrobust._C`` registers them. Here they get what PyTorch needs around them:

* ``register_fake``: shapes and dtypes for ``torch.compile`` / fake tensors;
* autograd is registered in C++ (``kernels/ops.cpp``), so that forward and backward run no Python.
  ``forward_corrected_ce`` / ``backward_corrected_ce`` / ``forward_corrected_ce_learnable`` return the
  loss, reduced inside the op (``reduction``: 0 none, 1 mean, 2 sum, as ``at::Reduction``); their kernels
  (the same names with a leading underscore, and ``_forward_corrected_ce_table_grad``) also return
  ``d loss / d logits`` (and ``d loss / d table``), which autograd keeps. The backward
  scales it by the incoming gradient: not at all when a reduced loss on CPU starts the backward (its
  gradient is 1), in place for other scalars (on CUDA without a pass when the scalar is 1), and into a
  new buffer for per-row gradients or a retained graph. It has no derivative: a backward with
  ``create_graph=True`` (Hessians, gradient penalties) raises rather than silently dropping the
  second-order term;
* ``register_autocast`` on CPU: under ``torch.autocast("cpu")`` the losses run in float32 (the CPU
  kernels take float32/float64). On CUDA the kernels take float16/bfloat16 directly.

``forward_loss`` and ``backward_loss`` run a corrected loss on whichever implementation ``backend()`` names,
or on the reference where the compiled kernels lack a feature (the gradient with respect to T is fused on
CPU only; elsewhere the reference runs, with a one-time warning).
"""

from __future__ import annotations

import warnings

import torch

from pyrobust import _reference

try:
    from pyrobust import _C  # noqa: F401  (registers the ops)
except ImportError as err:  # the extension was not built, or was built against another torch
    _C = None
    _IMPORT_ERROR: str | None = f"{type(err).__name__}: {err}"
else:
    _IMPORT_ERROR = None

__all__ = ["backend", "available", "backward_loss", "corrected_loss", "forward_loss", "learnable_forward_loss",
           "REDUCTIONS"]

#: The ops' ``reduction`` codes, those of ``at::Reduction`` (``torch.nn._reduction.get_enum``).
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}

_LOSS_OPS = ("pyrobust::forward_corrected_ce", "pyrobust::backward_corrected_ce")
_KERNEL_OPS = ("pyrobust::_forward_corrected_ce", "pyrobust::_backward_corrected_ce")
#: ops whose kernel is fused on some devices only (the reference runs elsewhere)
_TABLE_GRAD_OP = "pyrobust::_forward_corrected_ce_table_grad"
_LEARNABLE_OP = "pyrobust::_forward_corrected_ce_learnable"
_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(reason, RuntimeWarning, stacklevel=4)


def available() -> bool:
    """Whether the compiled extension ``pyrobust._C`` (the kernels of the corrected losses) is loaded.

    Returns:
        True if ``torch.ops.pyrobust.*`` are registered; raises nothing.
    """
    return _C is not None


def backend(device: torch.device | str = "cpu") -> str:
    """Which implementation of the corrected losses runs for tensors on ``device``.

    Args:
        device: a ``torch.device`` or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).

    Returns:
        ``"cpp"`` (the compiled CPU kernel), ``"cuda"`` (the compiled CUDA kernel) or ``"reference"``
        (plain PyTorch, ``pyrobust._reference``, the formulas of eq. 5 and Theorem 1). Falling back to
        ``"reference"`` warns (``RuntimeWarning``) once per reason, saying why the compiled kernel is
        unavailable.

    Raises:
        RuntimeError: ``device`` is not a device name (``torch.device``'s error).
    """
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    impl = _backends.get(device_type)
    if impl is None:
        impl = _backends[device_type] = _find_backend(device_type)
    if impl == "reference":
        _warn_once(_fallback_reasons[device_type])
    return impl


def _find_backend(device_type: str) -> str:
    if _C is None:
        reason = (
            f"the compiled kernels could not be loaded ({_IMPORT_ERROR}); build them with "
            "`pip install --no-build-isolation -e .` in the pyrobust checkout"
        )
    else:
        key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
        if key is not None and all(torch._C._dispatch_has_kernel_for_dispatch_key(op, key) for op in _KERNEL_OPS):
            return "cpp" if key == "CPU" else "cuda"
        if device_type == "cuda":
            reason = "CUDA kernels not compiled into this build (torch or nvcc without CUDA at build time)"
        else:
            reason = f"no compiled kernel for {device_type!r} tensors"
    _fallback_reasons[device_type] = f"pyrobust: {reason}; using the slower pure-PyTorch reference on {device_type}."
    return "reference"


def _table_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if logits_dtype == torch.float64 else torch.float32


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


_fallback_reasons: dict[str, str] = {}
# Decided once, at import, for the usual device types: backend() runs on every loss call and, under
# torch.compile, must be a plain dict lookup that dynamo folds into a constant.
_backends: dict[str, str] = {device_type: _find_backend(device_type) for device_type in ("cpu", "cuda")}

if _C is not None:
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


# --- the corrected losses on whichever backend runs ---------------------------------------------------

# The overloads themselves, not the packets: one lookup less per call. They exist where the extension loaded.
_OPS = (
    {kind: getattr(torch.ops.pyrobust, f"{kind}_corrected_ce").default for kind in ("forward", "backward")}
    if _C is not None
    else {}
)
# Device types whose compiled kernels fuse the gradient with respect to T (decided once, at import).
_TABLE_GRAD_FUSED = {
    device_type: _C is not None and all(torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
                                        for op in (_TABLE_GRAD_OP, _LEARNABLE_OP))
    for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA"))
}
if _C is not None:
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
