"""The compiled ops ``torch.ops.pyrobust.*``: loading the extension, ``backend()``, the CPU kernels'
instruction set (``cpu_capability()``), and, from one import, everything around the ops:

* ``pyrobust._ops_fake``: ``register_fake`` (shapes and dtypes for ``torch.compile`` / fake tensors) and
  ``register_autocast`` on CPU, registered when this module is imported;
* ``pyrobust._ops_losses``: ``forward_loss``, ``backward_loss``, ``learnable_forward_loss`` and
  ``corrected_loss``, which run a corrected loss on whichever implementation ``backend()`` names; importable
  from here, as ever.

The schemas live in ``kernels/ops.cpp`` and the kernels in ``kernels/cpu`` and ``kernels/cuda``; importing
``pyrobust._C`` registers them. Autograd is registered in C++ (``kernels/ops.cpp``), so that forward and
backward run no Python: ``forward_corrected_ce`` / ``backward_corrected_ce`` /
``forward_corrected_ce_learnable`` return the loss, reduced inside the op (``reduction``: 0 none, 1 mean,
2 sum, as ``at::Reduction``); their kernels (the same names with a leading underscore, and
``_forward_corrected_ce_table_grad``) also return ``d loss / d logits`` (and ``d loss / d table``), which
autograd keeps. The backward scales it by the incoming gradient: not at all when a reduced loss on CPU
starts the backward (its gradient is 1), in place for other scalars (on CUDA without a pass when the scalar
is 1), and into a new buffer for per-row gradients or a retained graph. It has no derivative: a backward
with ``create_graph=True`` (Hessians, gradient penalties) raises rather than silently dropping the
second-order term.

The CPU kernels are built once per instruction set (default, avx2, avx512: setup.py) and the best one the
CPU supports is loaded on first use, or the one that the environment variable ``PYROBUST_CPU_CAPABILITY``
names (as ``ATEN_CPU_CAPABILITY`` for PyTorch's own); ``cpu_capability()`` says which.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

import torch

try:
    from pyrobust import _C  # registers the ops
except ImportError as err:  # the extension was not built, or was built against another torch
    _C = None
    _IMPORT_ERROR: str | None = f"{type(err).__name__}: {err}"
else:
    _IMPORT_ERROR = None

__all__ = [
    "REDUCTIONS",
    "available",
    "backend",
    "backward_loss",
    "corrected_loss",
    "cpu_capability",
    "forward_loss",
    "learnable_forward_loss",
]

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
        ``"cpp"`` (the compiled CPU kernel, of the instruction set that :func:`cpu_capability` names),
        ``"cuda"`` (the compiled CUDA kernel) or ``"reference"`` (plain PyTorch, ``pyrobust._reference``, the
        formulas of eq. 5 and Theorem 1). Falling back to ``"reference"`` warns (``RuntimeWarning``) once per
        reason, saying why the compiled kernel is unavailable.

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


def cpu_capability() -> str | None:
    """The instruction set that the compiled CPU kernels run with.

    Returns:
        ``"default"`` (baseline x86-64; the only build on other architectures), ``"avx2"`` (AVX2 + FMA) or
        ``"avx512"`` (AVX-512 F/BW/VL/DQ): the best that this CPU supports, or the one that the environment
        variable ``PYROBUST_CPU_CAPABILITY`` names, chosen when the kernels first run; None without the
        compiled extension.

    Raises:
        RuntimeError: ``PYROBUST_CPU_CAPABILITY`` is not ``default``, ``avx2`` or ``avx512``, or names
            instructions that this CPU lacks (the message lists those it supports); every CPU kernel raises
            the same error.
    """
    return torch.ops.pyrobust.cpu_capability() if _C is not None else None


def _use_cpu_kernels(capability: str, library: str | None = None) -> str:
    """Tests and benchmarks only: runs the CPU kernels of ``capability`` from now on (checked as
    ``PYROBUST_CPU_CAPABILITY`` is), or those of ``library``, a build of ``kernels/cpu/kernels.cpp`` named
    ``capability`` (``benchmarks/cpu_dispatch.py``'s ``-march=native`` one). Returns the capability in use
    before (``""`` if none was chosen yet). Not while kernels run in other threads."""
    return torch.ops.pyrobust._use_cpu_kernels(capability, library)


def _table_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if logits_dtype == torch.float64 else torch.float32


_fallback_reasons: dict[str, str] = {}
# Decided once, at import, for the usual device types: backend() runs on every loss call and, under
# torch.compile, must be a plain dict lookup that dynamo folds into a constant.
_backends: dict[str, str] = {device_type: _find_backend(device_type) for device_type in ("cpu", "cuda")}

if _C is not None:
    from pyrobust import _ops_fake  # noqa: F401  (registers fake tensors and autocast)
if TYPE_CHECKING:
    from pyrobust._ops_losses import (
        backward_loss,
        corrected_loss,
        forward_loss,
        learnable_forward_loss,
    )

#: Names of pyrobust._ops_losses, importable from here; imported on first use, since that module imports
#: this one.
_LOSS_NAMES = frozenset({
    "backward_loss", "corrected_loss", "forward_loss", "learnable_forward_loss",
    "_OPS", "_TABLE_GRAD_FUSED", "_as_table", "_fused", "_kernel_logits", "_per_row", "_rows",
})


def __getattr__(name: str) -> Any:
    if name in _LOSS_NAMES:
        value = getattr(importlib.import_module("pyrobust._ops_losses"), name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
