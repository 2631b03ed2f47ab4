"""The ``DataLoader`` objects of the image loop (:mod:`pyrobust.experiment.images`), built so that ``N``
processes under torchrun see what one process sees: one sample order for every ``N`` (:func:`train_loader`),
random transforms seeded per example and epoch (:class:`SeededItems`), and round-robin shards of the
evaluation sets (:func:`shard_loader`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from pyrobust.experiment.distributed import World
from pyrobust.experiment.loop import derived_seed

if TYPE_CHECKING:
    from pyrobust.experiment.images import FitSettings

__all__ = ["SeededItems", "pin_memory", "shard_loader", "train_loader"]


class SeededItems(Dataset):
    """``dataset`` whose item ``i`` is produced with torch's global generator seeded by ``(seed, epoch, i)``:
    random transforms (crop, flip) that depend on the example and the epoch only, not on which process or
    worker loads it. Call :meth:`set_epoch` before each epoch (before the loader's iterator is created, so
    that the worker processes receive it). The global generator's state is restored after each item.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        item_seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed)
            return self.dataset[index]


def pin_memory(world: World) -> bool:
    """Whether loaders should pin host memory: only when batches go to a CUDA device."""
    return world.device.type == "cuda"


def train_loader(dataset: Dataset, settings: FitSettings, world: World) -> tuple[DataLoader, DistributedSampler]:
    """The training ``DataLoader`` of this process and its sampler (call ``sampler.set_epoch(e)`` per epoch).

    Batches of ``settings.batch_size / world.size`` examples from :class:`DistributedSampler`
    (``shuffle=True``, seed ``derived_seed(seed, "batch-order")``, ``drop_last=True``), every batch full.

    Raises:
        ValueError: the global batch is not divisible by the number of processes, or the training set has
            fewer examples than one global batch.
    """
    if settings.batch_size % world.size:
        raise ValueError(f"the global batch of {settings.batch_size} does not split over {world.size} processes "
                         f"(choose a batch_size divisible by the number of processes)")
    n = len(dataset)  # type: ignore[arg-type]
    if n < settings.batch_size:
        raise ValueError(f"{n} training examples are fewer than one batch of {settings.batch_size}")
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=derived_seed(settings.seed, "batch-order"), drop_last=True)
    loader = DataLoader(
        dataset, batch_size=settings.batch_size // world.size, sampler=sampler, drop_last=True,
        num_workers=settings.workers, pin_memory=pin_memory(world),
        generator=torch.Generator().manual_seed(derived_seed(settings.seed, "loader")),
    )
    return loader, sampler


def shard_loader(dataset: Dataset, batch_size: int, workers: int, world: World) -> DataLoader:
    """This process's round-robin share (examples ``rank, rank + size, ...``), in order."""
    share = Subset(dataset, range(world.rank, len(dataset), world.size))  # type: ignore[arg-type]
    return DataLoader(share, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory(world))
