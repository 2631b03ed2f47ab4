"""Evaluating a network on image files, in one process or data-parallel: :func:`evaluate_loader` (loss and
accuracy) and :func:`probabilities_loader` (the softmax the estimators of ``T`` read), each process on its
round-robin share, the results all-reduced or gathered; plus the device placement and autocast the
training loop shares with them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pyrobust.experiment.distributed import World, all_gather_rows, all_reduce_sum
from pyrobust.experiment.image_loaders import shard_loader

__all__ = ["amp_context", "evaluate_loader", "probabilities_loader", "to_device"]


def amp_context(device: torch.device, amp: bool) -> AbstractContextManager:
    """bfloat16 autocast on CUDA when ``amp``; otherwise a context that changes nothing."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and amp else nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (asynchronously from pinned memory); image batches channels-last on CUDA, the
    layout cuDNN's fastest convolutions take."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.inference_mode()
def evaluate_loader(
    model: nn.Module, dataset: Dataset, world: World, *, batch_size: int = 256, workers: int = 0, amp: bool = True,
) -> tuple[float, float]:
    """Mean cross-entropy (nats, of the network's own softmax) and accuracy (percent) of ``model`` on
    ``dataset`` (items ``(x, y)``, ``y`` an int64 class), the model in eval mode; every process evaluates its
    round-robin share and the sums are all-reduced, so every process returns the same two floats.

    Raises:
        ValueError: ``dataset`` is empty.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("cannot evaluate on an empty data set")
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=world.device)
    for x, y in shard_loader(dataset, batch_size, workers, world):
        x, y = to_device(x, world.device), y.to(world.device, non_blocking=True)
        with amp_context(world.device, amp):
            logits = model(x)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += (logits.argmax(1) == y).sum()
    loss, correct = all_reduce_sum(sums, world).tolist()
    return loss / n, 100.0 * correct / n


@torch.inference_mode()
def probabilities_loader(
    model: nn.Module, dataset: Dataset, world: World, *, batch_size: int = 256, workers: int = 0, amp: bool = True,
) -> torch.Tensor:
    """``softmax(model(x))`` for every example of ``dataset``, in its order: float32 CPU tensor ``n x C``,
    returned by every process (computed in shares, then gathered). The input of the estimators of ``T``
    (section 4.2); ``dataset`` should carry the evaluation transform (no augmentation).

    Raises:
        ValueError: fewer examples than processes (an empty data set included).
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n < world.size:
        raise ValueError(f"{n} examples for {world.size} processes: every process needs at least one")
    model.eval()
    parts = []
    for x, _ in shard_loader(dataset, batch_size, workers, world):
        with amp_context(world.device, amp):
            logits = model(to_device(x, world.device))
        parts.append(torch.softmax(logits.float(), dim=1))
    mine = torch.cat(parts)
    return all_gather_rows(mine, n, world).cpu()
