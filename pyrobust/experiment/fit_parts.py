"""What every trainer shares around its epochs: per-stream seeds, the device, deterministic mode, the
snapshot of the kept weights, and the per-epoch log line.

Kept apart from the fitting loop (:mod:`pyrobust.experiment.loop`, which re-exports them): the image
trainer and Clothing1M use them too.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrobust.experiment.config import TrainConfig

__all__ = ["Snapshot", "derived_seed", "deterministic", "epoch_line", "resolve_device"]


def derived_seed(seed: int, stream: str) -> int:
    """An independent seed (a uint32 as int) per ``stream`` (``"split"``, ``"init"``, ``"batch-order"``,
    ``"augment"``), all from the one run seed, so that every method of a seed shares each of them."""
    return int(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA if torch sees a device, else CPU; any other name as ``torch.device(name)``.

    Raises:
        ValueError: ``cuda`` asked for but torch sees no CUDA device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device (use --device cpu or auto)")
    return device


def _set_deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without its import of ``torch._inductor`` (and with it dynamo
    and sympy: about 1 s of CPU in every fresh process, half an MNIST run). That import only serves to set
    the same flag for compiled code; the trainer compiles nothing, so until inductor is loaded by someone
    else, set the eager (ATen) flag alone, which is all the public function does besides."""
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms only (an error on any op without one) if ``enabled``; restored on exit.

    Without filling fresh tensors with NaN, which that mode also does by default: every batch gather would
    pay for a useless fill (a quarter of the MNIST step time); the trainer never reads uninitialised memory.
    """
    import torch.utils.deterministic as det

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        det.fill_uninitialized_memory,
    )
    if enabled:
        _set_deterministic_algorithms(True, warn_only=False)
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        _set_deterministic_algorithms(*previous[:2])
        det.fill_uninitialized_memory = previous[2]



class Snapshot:
    """A copy of a model's parameters and buffers in preallocated tensors, taken and restored in place.

    Taking it is one ``copy_`` per tensor (no allocation per improved epoch); it holds the state dict's
    detached views, so it follows in-place updates (optimiser steps, batch-norm statistics) of ``model``.
    """

    def __init__(self, model: nn.Module):
        self._live = model.state_dict()
        self._saved = {k: torch.empty_like(v) for k, v in self._live.items()}

    @torch.no_grad()
    def take(self) -> None:
        """Copy the model's current state into the snapshot."""
        for k, v in self._live.items():
            self._saved[k].copy_(v)

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the snapshot back into the model's own tensors."""
        for k, v in self._live.items():
            v.copy_(self._saved[k])


def epoch_line(
    config: TrainConfig, epoch: int, history: dict[str, Any], best_epoch: int | None, seconds: float
) -> str:
    """The log line of ``epoch`` (from 1) of a run, its numbers the last of ``history``
    (:func:`pyrobust.experiment.loop.fit`'s)::

        mnist5k/fc/forward symmetric N=0.2 seed 0: epoch 3/40 loss 0.5123 val_loss 0.5012 val_acc 81.50% best 3 0.25 s

    The run (data set/network/method, noise, seed), the epoch, the mean training loss, the training loss
    on the noisy validation labels and the accuracy on them, the kept epoch so far (``-`` while no
    validation loss is finite), and the epoch's wall time in seconds.
    """
    return (
        f"{config.dataset}/{config.model}/{config.method} {config.noise} N={config.N:g} seed {config.seed}: "
        f"epoch {epoch}/{config.epochs} loss {history['train_loss'][-1]:.4f} "
        f"val_loss {history['val_loss'][-1]:.4f} val_acc {history['val_accuracy'][-1]:.2f}% "
        f"best {'-' if best_epoch is None else best_epoch} {seconds:.2f} s"
    )
