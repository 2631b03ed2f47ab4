"""Fitting one network: the device, the fixed split, the epochs, and the choice of the kept weights.

Steps 2 and 4 of the paper's protocol (section 5.1): hold out a fixed fraction of the *noisy* training set
for validation (:func:`split`, the same for every method of a seed), train for the configured epochs
(:func:`fit`), and keep the weights of the epoch with the lowest validation loss of the training loss
itself on the noisy validation labels. On CPU every op runs deterministically (:func:`deterministic`).
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrobust.experiment.config import TrainConfig
# Re-exported: callers import these from here (fit's seeds, device, determinism, snapshot, log line).
from pyrobust.experiment.fit_parts import Snapshot, derived_seed, deterministic, epoch_line, resolve_device
from pyrobust.experiment.labels import NoisyLabels
from pyrobust.experiment.optim import learning_rate, make_optimizer, make_transition_optimizer

__all__ = [
    "Prepared",
    "Snapshot",
    "derived_seed",
    "deterministic",
    "epoch_line",
    "evaluate",
    "fit",
    "prepare",
    "probabilities",
    "resolve_device",
    "split",
]


@dataclass
class Prepared:
    """The data on the training device and the fixed train/validation split.

    Attributes:
        x: the whole training set (train + val) in its original order, (n, ...) float or int64 token ids.
        y_noisy: the noisy labels, int64 (n,).
        x_test, y_test: the clean test set, (m, ...) and int64 (m,).
        train_idx, val_idx: sorted int64 indices into ``x`` of the training and validation splits.
        device: where every tensor lives.
        channels_last: images are in channels-last memory format (CUDA with autocast, 4-D inputs).
    """

    x: torch.Tensor
    y_noisy: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    device: torch.device
    channels_last: bool


def split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of ``range(n)``: (train, validation) sorted int64 indices, the validation part
    ``round(val_fraction * n)`` long (section 5.1: 10% of the noisy training set). Depends on ``seed`` only.

    Raises:
        ValueError: that leaves no validation or no training example.
    """
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"cannot hold out {val_fraction:.0%} of {n} training examples for validation")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, "split")))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def prepare(config: TrainConfig, data: Any, noisy: NoisyLabels, device: torch.device) -> Prepared:
    """Move ``data`` (a :class:`pyrobust.data.Dataset`) and ``noisy.labels`` to ``device`` and split them.

    Raises:
        ValueError: as :func:`split`.
    """
    train_idx, val_idx = split(len(noisy.labels), config.val_fraction, config.seed)
    x = data.x_train.to(device)
    x_test = data.x_test.to(device)
    channels_last = device.type == "cuda" and config.amp and x.dim() == 4
    if channels_last:
        x, x_test = (t.contiguous(memory_format=torch.channels_last) for t in (x, x_test))
        torch.backends.cudnn.benchmark = True  # fixed 32x32 shapes: let cuDNN pick the fastest convolutions
    return Prepared(
        x=x,
        y_noisy=torch.from_numpy(noisy.labels).to(device),
        x_test=x_test,
        y_test=data.y_test.to(device),
        train_idx=train_idx.to(device),
        val_idx=val_idx.to(device),
        device=device,
        channels_last=channels_last,
    )


def _autocast(prep: Prepared, config: TrainConfig):
    if prep.device.type == "cuda" and config.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _logits(model: nn.Module, x: torch.Tensor, prep: Prepared, config: TrainConfig) -> torch.Tensor:
    if prep.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(prep, config):
        out = model(x)
    # losses are computed in float32 whatever the autocast dtype
    return out.float()


@torch.inference_mode()
def evaluate(
    model: nn.Module, loss_fn: nn.Module | None, x: torch.Tensor, y: torch.Tensor, prep: Prepared,
    config: TrainConfig,
) -> tuple[float, float]:
    """Mean loss (``nan`` without ``loss_fn``) and accuracy in percent of ``model`` on ``x`` (n, ...) with
    int64 labels ``y`` (n,), in batches of ``config.eval_batch_size``, the model in eval mode."""
    model.eval()
    n = len(y)
    total_loss, correct = 0.0, 0
    for start in range(0, n, config.eval_batch_size):
        xb, yb = x[start : start + config.eval_batch_size], y[start : start + config.eval_batch_size]
        logits = _logits(model, xb, prep, config)
        if loss_fn is not None:
            total_loss += loss_fn(logits, yb).item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
    return (total_loss / n if loss_fn is not None else math.nan), 100.0 * correct / n


@torch.inference_mode()
def probabilities(model: nn.Module, prep: Prepared, config: TrainConfig) -> np.ndarray:
    """``softmax(model(x))`` on the whole training set (train + val, original order): float32 numpy (n, C),
    the input of the estimator of ``T_hat`` (section 4.2)."""
    model.eval()
    out = [
        torch.softmax(_logits(model, prep.x[s : s + config.eval_batch_size], prep, config), dim=1).cpu()
        for s in range(0, len(prep.x), config.eval_batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)


def fit(
    config: TrainConfig, model: nn.Module, loss_fn: nn.Module, prep: Prepared, progress: bool | None
) -> dict[str, Any]:
    """Train ``model`` for ``config.epochs`` on ``prep``'s training split with ``loss_fn(logits, target)``;
    leave it holding the weights of the lowest-validation-loss epoch (section 5.1). A ``loss_fn`` with
    parameters (a learned T) is trained with them, by SGD with momentum 0.9 at ``config.transition_lr``, and
    left holding its T of that epoch.

    Batches of ``config.batch_size`` in a seeded random order per epoch (a final batch of one example is
    dropped), crop/flip augmentation if ``config.augment``.

    ``progress``: True, a tqdm bar on stderr; False, nothing; None (the command line's), the bar when
    stderr is a terminal and otherwise one flushed line per epoch (:func:`epoch_line`), so that a job's
    log file shows how far it got. Either reads only what the epoch computed anyway.

    Returns:
        ``train_loss`` (mean per example), ``val_loss`` (the training loss on the noisy validation labels)
        and ``val_accuracy`` (percent), one float per epoch; ``best_epoch`` (from 1) and ``selection`` (how
        it was chosen: the last epoch when no validation loss was finite).
    """
    from tqdm.auto import tqdm

    optimizer = make_optimizer(config, model)
    # A loss that learns T (T-Revision, VolMinNet) has parameters of its own, kept with the best epoch's weights.
    T_optimizer = make_transition_optimizer(config, loss_fn)
    order_gen = torch.Generator().manual_seed(derived_seed(config.seed, "batch-order"))
    augment_gen = None
    if config.augment:
        from pyrobust.data import random_crop_flip

        augment_gen = torch.Generator(device=prep.device).manual_seed(derived_seed(config.seed, "augment"))
    n_train = len(prep.train_idx)
    bs = config.batch_size
    # a final batch of one example is dropped: batch norm cannot normalise a single example
    n_used = n_train - 1 if n_train % bs == 1 and n_train > 1 else n_train
    # One gather per epoch into these buffers, then every batch is a slice (a view): small networks are
    # bound by per-op overhead, and this takes two ops and two allocations out of every step.
    x_epoch = prep.x.new_empty((n_used, *prep.x.shape[1:]))
    y_epoch = prep.y_noisy.new_empty(n_used)
    x_val, y_val = prep.x.index_select(0, prep.val_idx), prep.y_noisy.index_select(0, prep.val_idx)

    history: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_epoch = math.inf, None
    best = Snapshot(model if T_optimizer is None else nn.ModuleList([model, loss_fn]))
    log = sys.stderr
    on_terminal = progress is None and hasattr(log, "isatty") and log.isatty()
    lines = progress is None and not on_terminal
    bar = tqdm(
        range(1, config.epochs + 1), desc=f"{config.dataset}/{config.model}/{config.method}", unit="epoch",
        disable=not (progress or on_terminal), leave=False, file=log,
    )
    for epoch in bar:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch)
        model.train()
        order = prep.train_idx[torch.randperm(n_train, generator=order_gen).to(prep.device)][:n_used]
        torch.index_select(prep.x, 0, order, out=x_epoch)
        torch.index_select(prep.y_noisy, 0, order, out=y_epoch)
        running = torch.zeros((), device=prep.device)
        for start in range(0, n_used, bs):
            xb, yb = x_epoch[start : start + bs], y_epoch[start : start + bs]
            if augment_gen is not None:
                xb = random_crop_flip(xb, padding=4, generator=augment_gen)
            loss = loss_fn(_logits(model, xb, prep, config), yb)
            optimizer.zero_grad()
            if T_optimizer is not None:
                T_optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if T_optimizer is not None:
                T_optimizer.step()
            running.add_(loss.detach(), alpha=len(yb))
        val_loss, val_acc = evaluate(model, loss_fn, x_val, y_val, prep, config)
        history["train_loss"].append(running.item() / n_used)
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if val_loss < best_loss:  # nan never compares smaller: a diverged epoch is never kept
            best_loss, best_epoch = val_loss, epoch
            best.take()
        bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best_epoch)
        if lines:
            print(epoch_line(config, epoch, history, best_epoch, time.perf_counter() - started), file=log,
                  flush=True)
    bar.close()
    if best_epoch is None:
        history["selection"] = "last epoch (no finite validation loss)"
        best_epoch = config.epochs
    else:
        history["selection"] = "lowest validation loss"
        best.restore()
    history["best_epoch"] = best_epoch
    return history
