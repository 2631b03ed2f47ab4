"""The compiled ops ``torch.ops.pyrobust.*``: loading, fake tensors, autograd, autocast, ``backend()``, and
``corrected_loss()``, which runs a corrected loss on whichever implementation ``backend()`` names.

The schemas live in ``kernels/ops.cpp`` and the kernels in ``kernels/cpu`` and ``kernels/cuda``; importing
``pyrobust._C`` registers them. Here they get what PyTorch needs around them:

* ``register_fake``: shapes and dtypes for ``torch.compile`` / fake tensors;
* autograd is registered in C++ (``kernels/ops.cpp``), so that forward and backward run no Python.
  ``forward_corrected_ce`` / ``backward_corrected_ce`` return the loss, reduced inside the op
  (``reduction``: 0 none, 1 mean, 2 sum, as ``at::Reduction``); their kernels ``_forward_corrected_ce``
  / ``_backward_corrected_ce`` also return ``d loss / d logits``, which autograd keeps. The backward
  scales it by the incoming gradient: not at all when a reduced loss on CPU starts the backward (its
  gradient is 1), in place for other scalars (on CUDA without a pass when the scalar is 1), and into a
  new buffer for per-row gradients or a retained graph. It has no derivative: a backward with
  ``create_graph=True`` (Hessians, gradient penalties) raises rather than silently dropping the
  second-order term;
* ``register_autocast`` on CPU: under ``torch.autocast("cpu")`` the losses run in float32 (the CPU
  kernels take float32/float64). On CUDA the kernels take float16/bfloat16 directly.
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

__all__ = ["backend", "available", "corrected_loss", "REDUCTIONS"]

#: The ops' ``reduction`` codes, those of ``at::Reduction`` (``torch.nn._reduction.get_enum``).
REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}

_LOSS_OPS = ("pyrobust::forward_corrected_ce", "pyrobust::backward_corrected_ce")
_KERNEL_OPS = ("pyrobust::_forward_corrected_ce", "pyrobust::_backward_corrected_ce")
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


def _fake_loss(logits, target, table, ignore_index=-100, reduction=1):
    # Shapes raise ValueError, as the kernels (kernels/include/pyrobust/checks.h) and F.cross_entropy.
    torch._check_value(logits.dim() == 2, lambda: f"logits must be 2-D (B, C), got {logits.dim()}-D")
    torch._check_value(target.shape == logits.shape[:1], lambda: "target must have shape (B,)")
    torch._check_value(table.shape == (logits.shape[1], logits.shape[1]), lambda: "table must be C x C")
    torch._check(reduction in REDUCTIONS.values(), lambda: f"reduction must be 0, 1 or 2, got {reduction}")
    loss_shape = logits.shape[:1] if reduction == REDUCTIONS["none"] else ()
    return logits.new_empty(loss_shape, dtype=_table_dtype(logits.dtype))


def _fake_loss_and_grad(logits, target, table, ignore_index, reduction):
    loss = _fake_loss(logits, target, table, ignore_index, reduction)
    return loss, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _fake_scale_grad(grad, grad_loss):
    torch._check(grad_loss.dim() == 0 or grad_loss.shape == grad.shape[:1], lambda: "grad_loss must be () or (B,)")
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


_fallback_reasons: dict[str, str] = {}
# Decided once, at import, for the usual device types: backend() runs on every loss call and, under
# torch.compile, must be a plain dict lookup that dynamo folds into a constant.
_backends: dict[str, str] = {device_type: _find_backend(device_type) for device_type in ("cpu", "cuda")}

if _C is not None:
    for _op in _LOSS_OPS:
        torch.library.register_fake(_op)(_fake_loss)
        torch.library.register_autocast(_op, "cpu", torch.float32)
    for _op in _KERNEL_OPS:
        torch.library.register_fake(_op)(_fake_loss_and_grad)
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


def corrected_loss(
    kind: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    table: torch.Tensor,
    reduction: str,
    ignore_index: int,
    clip: float = 0.0,
) -> torch.Tensor:
    """A corrected cross-entropy reduced as ``F.cross_entropy`` reduces it, by the compiled op or the reference.

    The inputs are those of ``pyrobust.losses.corrected`` after its checks (shapes, dtypes and devices are not
    checked again here; target values are, by the compiled CPU kernel or the reference).

    Args:
        kind: ``"forward"`` (paper, eq. 5; ``table`` is ``log_T_t[y, j] = log T[j, y]``) or ``"backward"``
            (Theorem 1; ``table`` is ``T^{-1}``).
        logits: (B, C) floating point; float16/bfloat16 run in float32 on CPU.
        target: (B,) int64 class indices or ``ignore_index``.
        table: (C, C) floating point, on the logits' device (cast to the loss dtype here).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: target value of rows that contribute 0 loss and 0 gradient.
        clip: the backward correction's probability clip (``0``: exact; ``> 0`` runs the reference).

    Returns:
        The loss, () or (B,) for ``"none"``: float64 for float64 logits, float32 otherwise.

    Raises:
        IndexError: a target outside ``[0, C)`` that is not ``ignore_index`` (CPU kernel and reference; the
            CUDA kernel stops with a device-side assertion instead, as ``F.cross_entropy`` on CUDA).
    """
    impl = backend(logits.device)
    if impl == "cpp" and logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()  # the CPU kernels run float16/bfloat16 in float32; autograd casts back
    table = table.to(dtype=_table_dtype(logits.dtype))
    # Gradients to the table, and the clipped backward loss (not fused), are plain PyTorch by design.
    if impl != "reference" and not table.requires_grad and not clip:
        args = (logits.contiguous(), target.contiguous(), table.contiguous(), ignore_index, REDUCTIONS[reduction])
        return _OPS[kind](*args)
    if kind == "forward":
        loss = _reference.forward_corrected_ce(logits, target, table, ignore_index)
    else:
        loss = _reference.backward_corrected_ce(logits, target, table, ignore_index, clip)
    return _reference.reduce(loss, target, reduction, ignore_index)
