"""Fitting a network on image files fed by a ``DataLoader``, in one process or data-parallel under torchrun.

:mod:`~pyrobust.experiment.loop` trains on tensors held in memory (MNIST, CIFAR, IMDB); Clothing1M's
million JPEGs are decoded on the fly by ``DataLoader`` workers instead, and outgrow one GPU. This is that
second, separate loop (:func:`fit_loader`), written so that ``N`` processes under ``torchrun`` give the
parameters one process gives for the same global batch:

- **order**: ``torch.utils.data.DistributedSampler`` with the run's seed (``shuffle=True``,
  ``drop_last=True``), the same permutation of the training set in every process and for every ``N``;
  process ``r`` takes positions ``r, r + N, ...`` of it. With per-process batches of ``global / N``
  (``DataLoader(drop_last=True)``), step ``k`` of the ``N`` processes together covers positions
  ``[k B, (k + 1) B)`` of the permutation: exactly the global batch ``k`` of one process. An epoch uses
  ``floor(n / B)`` full batches (the last ``n mod B`` examples of each epoch's permutation are left out,
  never padded or repeated).
- **augmentation**: the random crop and flip of example ``i`` in epoch ``e`` are drawn from a generator
  seeded by ``(seed, e, i)`` (:class:`SeededItems`), so they do not depend on the process, the worker or
  ``N``.
- **gradients**: every process takes the mean loss over its ``B / N`` examples; DDP averages the gradients
  over the ``N`` processes: the gradient of the mean over the global batch.
- **batch normalisation**: over the global batch (``batch_norm="global"``: ``SyncBatchNorm`` on CUDA,
  :class:`~pyrobust.experiment.distributed.GlobalBatchNorm` on CPU), which is what the paper's single
  process computed with batch 32; per-process statistics over ``32 / N`` images would be another method.
  ``batch_norm="frozen"`` keeps every BN layer in eval mode (the ImageNet statistics; the affine parameters
  still train): no communication and independent of the per-process batch, but not the paper's training.
- **selection and evaluation**: the validation and test sets are sharded round-robin over the processes
  and their sums all-reduced, so every process takes the same decisions (the kept epoch).

Tensors: images ``B x 3 x H x W`` float32 (ImageNet-normalised by the data set's transform), labels ``B``
int64, logits ``B x C`` (float32, or computed under bfloat16 autocast on CUDA and cast to float32 for the
loss).

The loop is split by job: :mod:`~pyrobust.experiment.image_loaders` (sample order, seeded augmentation,
shards) and :mod:`~pyrobust.experiment.image_eval` (evaluation, softmax) hold the parts it uses;
:class:`SeededItems`, :func:`train_loader`, :func:`evaluate_loader` and :func:`probabilities_loader` are
importable from here too.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from pyrobust.experiment.distributed import World, all_reduce_sum
from pyrobust.experiment.image_eval import amp_context, evaluate_loader, probabilities_loader, to_device
from pyrobust.experiment.image_loaders import SeededItems, train_loader
from pyrobust.experiment.loop import Snapshot, derived_seed
from pyrobust.experiment.optim import learning_rate

__all__ = [
    "SELECTIONS",
    "FitSettings",
    "SeededItems",
    "evaluate_loader",
    "fit_loader",
    "probabilities_loader",
    "train_loader",
]

#: How :func:`fit_loader` picks the kept epoch: lowest cross-entropy or highest accuracy on the (clean)
#: validation set, or the last epoch.
SELECTIONS = ("val_loss", "val_accuracy", "last")


class FitSettings(Protocol):
    """The settings :func:`fit_loader` reads (``Clothing1MConfig`` has them all).

    ``epochs``; ``lr`` (the first epochs' step size), multiplied by ``lr_gamma`` after each epoch in
    ``lr_milestones`` (:func:`pyrobust.experiment.optim.learning_rate`); SGD ``momentum`` and L2
    ``weight_decay``; ``batch_size`` (the *global* batch, divisible by the number of processes);
    ``eval_batch_size`` (per process); ``workers`` (``DataLoader`` worker processes per training process);
    ``seed``; ``selection`` (one of :data:`SELECTIONS`); ``batch_norm`` (``"global"`` or ``"frozen"``);
    ``amp`` (bfloat16 autocast on CUDA); ``log_every`` (steps between progress lines, 0 for none).
    """

    epochs: int
    lr: float
    lr_milestones: tuple[int, ...]
    lr_gamma: float
    momentum: float
    weight_decay: float
    batch_size: int
    eval_batch_size: int
    workers: int
    seed: int
    selection: str
    batch_norm: str
    amp: bool
    log_every: int


def _set_train(model: nn.Module, batch_norm: str) -> None:
    """Training mode; with ``batch_norm="frozen"`` every batch-norm layer stays in eval mode."""
    model.train()
    if batch_norm == "frozen":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _line(name: str, text: str) -> None:
    print(f"{name}: {text}", file=sys.stderr, flush=True)


def fit_loader(
    settings: FitSettings,
    model: nn.Module,
    loss_fn: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    world: World,
    *,
    name: str = "train",
    augmented: bool = False,
) -> dict[str, Any]:
    """Train ``model`` (already on ``world.device``, batch norm already made global where wanted) on
    ``train_set`` with ``loss_fn(logits, y)`` (mean over its batch) and SGD; leave it holding the weights of
    the kept epoch (``settings.selection``, judged on ``val_set``).

    ``train_set`` yields ``(x, y)``: ``x`` float32 ``3 x H x W``, ``y`` 0-d int64. With ``augmented=True``
    its random transform is seeded per example and epoch (:class:`SeededItems`). Under torchrun
    (``world.size > 1``) the model is wrapped in ``DistributedDataParallel`` for the training steps; every
    process ends with the same weights. Rank 0 prints one line per epoch (and every ``settings.log_every``
    steps) on stderr, prefixed by ``name``.

    Returns:
        ``train_loss`` (mean over the epoch's examples of all processes), ``val_loss`` (cross-entropy on
        ``val_set``, nats) and ``val_accuracy`` (percent), one float per epoch (``nan`` without
        ``val_set``); ``lr`` per epoch; ``best_epoch`` (from 1); ``selection`` (how it was chosen);
        ``steps`` (optimiser steps in all); ``examples_per_epoch``.

    Raises:
        ValueError: an unknown ``settings.selection`` or ``batch_norm``, a selection on validation without
            ``val_set``, and as :func:`train_loader`.
    """
    if settings.selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {settings.selection!r}")
    if settings.batch_norm not in ("global", "frozen"):
        raise ValueError(f"batch_norm must be 'global' or 'frozen', got {settings.batch_norm!r}")
    if settings.selection != "last" and val_set is None:
        raise ValueError(f"selection {settings.selection!r} needs a validation set")
    items = SeededItems(train_set, derived_seed(settings.seed, "augment")) if augmented else train_set
    loader, sampler = train_loader(items, settings, world)
    device = world.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest convolutions
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay, fused=fused)
    trainer: nn.Module = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # rank 0's parameters and buffers are copied to every process here; the BN running statistics then
        # stay equal on every process (global statistics), and DDP's per-step copy of them is a no-op
        trainer = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          gradient_as_bucket_view=True)
    steps_per_epoch = len(loader)
    per_epoch = steps_per_epoch * settings.batch_size
    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_accuracy": [], "lr": []}
    best_value, best_epoch, best = math.inf, None, Snapshot(model)
    steps = 0
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        lr = learning_rate(settings, epoch)  # type: ignore[arg-type]
        for group in optimizer.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)
        if isinstance(items, SeededItems):
            items.set_epoch(epoch)
        _set_train(model, settings.batch_norm)
        running = torch.zeros((), dtype=torch.float64, device=device)
        for step, (x, y) in enumerate(loader, start=1):
            x, y = to_device(x, device), y.to(device, non_blocking=True)
            with amp_context(device, settings.amp):
                logits = trainer(x)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach().double() * len(y)
            steps += 1
            if settings.log_every and step % settings.log_every == 0:
                seen = all_reduce_sum(running, world).item() if world.distributed else running.item()
                if world.is_main:
                    rate = step * settings.batch_size / (time.perf_counter() - started)
                    _line(name, f"epoch {epoch}/{settings.epochs} step {step}/{steps_per_epoch} "
                                f"loss {seen / (step * settings.batch_size):.4f} lr {lr:g} {rate:.0f} img/s")
        train_loss = all_reduce_sum(running, world).item() / max(per_epoch, 1)
        if val_set is not None:
            val_loss, val_acc = evaluate_loader(model, val_set, world, batch_size=settings.eval_batch_size,
                                                workers=settings.workers, amp=settings.amp)
        else:
            val_loss, val_acc = math.nan, math.nan
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        history["lr"].append(lr)
        value = {"val_loss": val_loss, "val_accuracy": -val_acc, "last": -epoch}[settings.selection]
        if value < best_value:  # nan never compares smaller: a diverged epoch is never kept
            best_value, best_epoch = value, epoch
            best.take()
        if world.is_main:
            seconds = time.perf_counter() - started
            _line(name, f"epoch {epoch}/{settings.epochs} loss {train_loss:.4f} val_loss {val_loss:.4f} "
                        f"val_acc {val_acc:.2f}% best {'-' if best_epoch is None else best_epoch} lr {lr:g} "
                        f"{seconds:.1f} s ({per_epoch / seconds:.0f} img/s)")
    if best_epoch is None:
        history["selection"] = "last epoch (no finite validation value)"
        best_epoch = settings.epochs
    else:
        history["selection"] = {
            "val_loss": "lowest cross-entropy on the clean validation set",
            "val_accuracy": "highest accuracy on the clean validation set",
            "last": "last epoch",
        }[settings.selection]
        best.restore()
    history["best_epoch"] = best_epoch
    history["steps"] = steps
    history["examples_per_epoch"] = per_epoch
    return history
