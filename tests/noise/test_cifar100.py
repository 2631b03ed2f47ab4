"""pyrobust.noise.cifar100: CIFAR-100's superclass table and the paper's CIFAR-100 flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from noise_tables import assert_valid, expected

from pyrobust import noise
from pyrobust.noise.cifar100 import superclass_cycles

CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
    "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
    "worm"
).split()

CIFAR100_GROUPS = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def test_cifar100_coarse_table_is_the_real_superclasses():
    table = noise.CIFAR100_COARSE_LABELS
    assert len(table) == 100 and len(noise.CIFAR100_SUPERCLASS_NAMES) == 20
    assert np.bincount(table, minlength=20).tolist() == [5] * 20
    for coarse, name in enumerate(noise.CIFAR100_SUPERCLASS_NAMES):
        members = {CIFAR100_FINE.index(fine) for fine in CIFAR100_GROUPS[name].split()}
        assert {f for f in range(100) if table[f] == coarse} == members, name
    assert [f for f in range(100) if table[f] == 0] == [4, 30, 55, 72, 95]


@pytest.mark.parametrize("N", [0.2, 0.5, 0.8])
def test_cifar100_flips_to_next_class_of_superclass_circularly(N):
    T = noise.asymmetric("cifar100", N)
    assert_valid(T, 100)
    flips = {}
    for name in noise.CIFAR100_SUPERCLASS_NAMES:
        members = sorted(CIFAR100_FINE.index(fine) for fine in CIFAR100_GROUPS[name].split())
        flips.update({members[m]: members[(m + 1) % 5] for m in range(5)})
    np.testing.assert_array_equal(T.numpy(), expected(100, flips, N))
    assert T[4, 30] == N and T[95, 4] == N and T[4, 5] == 0  # beaver -> dolphin, whale -> beaver
    assert torch.linalg.matrix_rank(T) == 100  # 5-cycles are never singular, even at N = 0.5


def test_cifar100_accepts_a_coarse_table():
    table = np.arange(100) // 5  # the authors' consecutive blocks
    T = noise.asymmetric("cifar100", 0.3, coarse_labels=table)
    assert T[0, 1] == pytest.approx(0.3) and T[4, 0] == pytest.approx(0.3) and T[4, 5] == 0
    with pytest.raises(ValueError, match="one entry per class"):
        noise.asymmetric("cifar100", 0.3, coarse_labels=np.zeros(50_000, dtype=np.int64))
    with pytest.raises(ValueError, match="coarse_labels only applies to 'cifar100'"):
        noise.asymmetric("mnist", 0.3, coarse_labels=table)


def test_superclass_cycles_of_a_small_table():
    assert superclass_cycles([0, 1, 0, 1, 0], 5) == [(0, 2), (2, 4), (4, 0), (1, 3), (3, 1)]
    assert superclass_cycles(torch.tensor([2, 2, 7]), 3) == [(0, 1), (1, 0)]  # a one-class superclass: none
    with pytest.raises(ValueError, match=r"one entry per class \(3 integers\)"):
        superclass_cycles([0.0, 1.0, 2.0], 3)
