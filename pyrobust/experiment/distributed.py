"""Data-parallel training with PyTorch's own ``DistributedDataParallel``, one process per device.

A job that asks for ``N`` GPUs launches ``N`` processes with ``torchrun --nproc-per-node N ...``; torchrun
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`init` joins
the process group (NCCL between CUDA devices, gloo on CPU). Without those variables (a plain ``python``
run) :func:`init` returns a world of one process and nothing here communicates.

The training is written so that ``N`` processes compute what one process computes with the same global
batch (:mod:`pyrobust.experiment.images`): the same sample order, per-process batches of ``global / N``,
gradients averaged by DDP, and batch normalisation over the *global* batch (:func:`global_batch_norm`):
``torch.nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` (the same statistics, for CPU and gloo, which
``SyncBatchNorm`` refuses) elsewhere. Results differ from one process only by floating-point summation
order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "GlobalBatchNorm",
    "World",
    "all_gather_rows",
    "all_reduce_sum",
    "global_batch_norm",
    "init",
    "shutdown",
]


@dataclass(frozen=True)
class World:
    """This process's place in the job.

    Attributes:
        rank: 0 .. ``size - 1``; rank 0 logs and writes files.
        size: the number of processes (``WORLD_SIZE``; 1 without torchrun).
        local_rank: the process's index on its machine (``LOCAL_RANK``): its CUDA device.
        device: where this process computes.
        backend: ``"nccl"``, ``"gloo"``, or None for a single process (no process group).
    """

    rank: int
    size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that logs and writes)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group of more than one process is in use."""
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def init(device: str = "auto") -> World:
    """Join the process group torchrun describes, or return a world of one process without torchrun.

    ``device``: ``"auto"`` (CUDA device ``LOCAL_RANK`` if torch sees CUDA, else CPU), ``"cuda"`` or
    ``"cpu"``. With ``WORLD_SIZE > 1`` the backend is NCCL for CUDA and gloo for CPU, and the CUDA device of
    this process is set to ``cuda:LOCAL_RANK``. Calling it when the group is already initialised (by the
    caller) reuses that group.

    Raises:
        ValueError: ``device`` is unknown, CUDA is asked for but not available, ``LOCAL_RANK`` has no CUDA
            device, or a torchrun variable is not an integer.
    """
    size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device (use --device cpu or auto)")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are "
                             f"visible: launch at most that many processes per machine")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend())
    if size == 1:
        return World(0, 1, 0, dev, None)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, device_id=dev if use_cuda else None)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


def shutdown(world: World) -> None:
    """Leave the process group :func:`init` joined (nothing for a single process)."""
    if world.backend is not None and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """The elementwise sum of ``values`` over the processes (``values`` itself for one process).

    ``values`` is not modified; the result is a new tensor on ``values``' device.
    """
    out = values.clone()
    if world.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_rows(rows: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """Reassemble the rows of ``n`` examples sharded round-robin: this process holds examples
    ``rank, rank + size, rank + 2 size, ...`` (``rows``: ``ceil((n - rank) / size) x ...``); return all
    ``n x ...`` rows in example order, on every process (on ``rows``' device).

    Raises:
        ValueError: ``rows`` has not the number of rows of this process's share.
    """
    mine = len(range(world.rank, n, world.size))
    if rows.shape[0] != mine:
        raise ValueError(f"rank {world.rank} of {world.size} holds {mine} of {n} rows, got {rows.shape[0]}")
    if not world.distributed:
        return rows
    longest = len(range(0, n, world.size))
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[:mine] = rows
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    out = rows.new_empty((n, *rows.shape[1:]))
    for r, part in enumerate(parts):
        out[r::world.size] = part[: len(range(r, n, world.size))]
    return out


class _SumOverProcesses(torch.autograd.Function):
    """``y = sum over processes of x`` (on every process), differentiable: the gradient of each process's
    ``x`` is the sum over processes of the gradients of their ``y`` (each process's loss depends on every
    process's ``x`` through ``y``). torch's ``torch.distributed.nn.functional.all_reduce`` does the same
    and is deprecated; its suggested replacement is private."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM, group=group)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes: what ``torch.nn.SyncBatchNorm`` computes,
    for CPU tensors and the gloo backend, which it refuses.

    In training mode with a process group of more than one process, the per-channel mean and (biased)
    variance are those of the union of the processes' batches: two differentiable all-reduces
    (:class:`_SumOverProcesses`), the first of the sums and counts, the second of the
    squared deviations from the global mean, so that the gradient flows to every process's examples as in
    one process. The running statistics are updated with the global mean and the unbiased global variance,
    identically on every process. Otherwise (one process, or eval mode) it is ``nn.BatchNorm*d`` itself.

    Input ``(N, C)`` or ``(N, C, ...)``; the state dict is that of the batch-norm layer it replaces.

    Raises:
        ValueError: an input of fewer than 2 dimensions; a global batch of one value per channel in
            training mode (as ``nn.BatchNorm``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: dist.ProcessGroup | None = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _world_size(self) -> int:
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        return dist.get_world_size(self.process_group)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self._world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        C = input.shape[1]
        dims = [0, *range(2, input.dim())]
        group = self.process_group
        count = torch.full((1,), input.numel() // C, dtype=input.dtype, device=input.device)
        first = _SumOverProcesses.apply(torch.cat([input.sum(dims), count]), group)
        n = first[C]
        if n.item() <= 1:
            raise ValueError(f"expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
        shape = [1, C] + [1] * (input.dim() - 2)
        mean = first[:C] / n
        centred = input - mean.view(shape)
        var = _SumOverProcesses.apply(centred.pow(2).sum(dims), group) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (n / (n - 1)), alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _replace_batch_norm(module: nn.Module, make: type[nn.Module]) -> nn.Module:
    """``module`` with every ``BatchNorm*d`` replaced by ``make`` holding the same parameters and buffers."""
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, make):
        out = make(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _replace_batch_norm(child, make))
    return out


def global_batch_norm(model: nn.Module, world: World) -> nn.Module:
    """``model`` with batch normalisation over the global batch when ``world`` has several processes:
    ``torch.nn.SyncBatchNorm`` on CUDA (fused kernels), :class:`GlobalBatchNorm` elsewhere; ``model``
    unchanged for one process. Parameters and buffers are kept (the same tensors), so the state dict's keys
    and values are unchanged.
    """
    if not world.distributed:
        return model
    if world.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace_batch_norm(model, GlobalBatchNorm)
