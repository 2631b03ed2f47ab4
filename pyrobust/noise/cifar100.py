"""CIFAR-100's superclasses, and the flips of the paper's CIFAR-100 asymmetric noise (section 5.1).

The paper flips each CIFAR-100 class "to the next" within its superclass, circularly. The superclasses
here are the data set's own 20 coarse labels (Krizhevsky, 2009), as stored in its ``coarse_labels``; the
authors' code used blocks of 5 consecutive fine indices instead, which are not the real superclasses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["CIFAR100_COARSE_LABELS", "CIFAR100_SUPERCLASS_NAMES", "superclass_cycles"]

#: CIFAR-100's 20 superclasses ("coarse labels"), in the order of the data set's coarse label indices.
CIFAR100_SUPERCLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)  # fmt: skip

#: CIFAR-100 fine label -> coarse label (superclass), as stored in the data set's own ``coarse_labels``;
#: e.g. aquatic mammals (0) = {beaver 4, dolphin 30, otter 55, seal 72, whale 95}.
CIFAR100_COARSE_LABELS = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip


def superclass_cycles(
    coarse_labels: Sequence[int] | np.ndarray | torch.Tensor, C: int
) -> list[tuple[int, int]]:
    """The flips ``(clean, noisy)`` of the paper's CIFAR-100 noise for a fine -> coarse table.

    For every superclass whose members, sorted by fine index, are ``f_1 < ... < f_k`` (``k >= 2``): the
    pairs ``(f_m, f_{m+1})`` for ``m < k`` and ``(f_k, f_1)`` (Patrini et al. 2017, section 5.1: "flip
    each class into the next, circularly", within its superclass). Superclasses of one class add none.

    Args:
        coarse_labels: the fine -> coarse table, ``C`` integers (a sequence, an integer NumPy array or
            tensor): ``coarse_labels[f]`` is the superclass of fine class ``f``.
        C: the number of fine classes.

    Returns:
        A list of ``(clean, noisy)`` pairs of Python ints, superclass by superclass in ascending coarse
        index, for :func:`pyrobust.noise.pair_flips`.

    Raises:
        ValueError: ``coarse_labels`` is not ``C`` integers (per-example coarse labels, e.g. the 50,000 of
            the training set, are not such a table).
    """
    table = np.asarray(coarse_labels.cpu() if isinstance(coarse_labels, torch.Tensor) else coarse_labels)
    if table.shape != (C,) or table.dtype.kind not in "iu":
        raise ValueError(
            f"coarse_labels must be the fine -> coarse table with one entry per class ({C} integers), got "
            f"shape {table.shape} and dtype {table.dtype}; per-example coarse labels are not such a table "
            "(pass None for CIFAR-100's own table)"
        )
    pairs = []
    for coarse in np.unique(table):
        members = np.flatnonzero(table == coarse).tolist()  # ascending fine index
        if len(members) > 1:
            pairs += list(zip(members, members[1:] + members[:1]))
    return pairs
