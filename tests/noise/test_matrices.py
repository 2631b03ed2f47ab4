"""pyrobust.noise.matrices: the paper's transition matrices (section 5.1) and the T of a Table 2 column."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from noise_tables import assert_valid, expected

import pyrobust
from pyrobust import catalog, noise


@pytest.mark.parametrize("C, N", [(2, 0.2), (10, 0.0), (10, 0.2), (10, 0.95), (100, 0.5)])
def test_symmetric_entry_by_entry(C, N):
    T = noise.symmetric(C, N)
    assert_valid(T, C)
    for i in range(C):
        for j in range(C):
            assert T[i, j].item() == pytest.approx(1 - N if i == j else N / (C - 1), abs=1e-15)


@pytest.mark.parametrize("N", [0.0, 0.2, 0.6])
def test_mnist_asymmetric_is_2to7_3to8_5and6_7to1(N):
    T = noise.asymmetric("mnist", N)
    assert_valid(T, 10)
    np.testing.assert_array_equal(T.numpy(), expected(10, {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}, N))


@pytest.mark.parametrize("N", [0.2, 0.6])
def test_cifar10_asymmetric_is_truck_bird_deer_cat_dog(N):
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    flips = {"truck": "automobile", "bird": "airplane", "deer": "horse", "cat": "dog", "dog": "cat"}
    want = expected(10, {names.index(a): names.index(b) for a, b in flips.items()}, N)
    np.testing.assert_array_equal(noise.asymmetric("cifar10", N).numpy(), want)


@pytest.mark.parametrize("name", ["imdb", "binary", "IMDB"])
def test_binary_asymmetric(name):
    np.testing.assert_allclose(
        noise.asymmetric(name, 0.3).numpy(), [[0.95, 0.05], [0.3, 0.7]], rtol=0, atol=1e-15
    )


def test_pair_flips_and_transition_matrix_for():
    np.testing.assert_array_equal(
        noise.pair_flips(4, [(0, 3), (3, 1)], 0.25).numpy(), expected(4, {0: 3, 3: 1}, 0.25)
    )
    torch.testing.assert_close(
        noise.transition_matrix_for("mnist5k", "asymmetric", 0.2), noise.asymmetric("mnist", 0.2)
    )
    torch.testing.assert_close(
        noise.transition_matrix_for("cifar100", "symmetric", 0.2), noise.symmetric(100, 0.2)
    )
    torch.testing.assert_close(
        noise.transition_matrix_for("imdb", "asymmetric", 0.2), noise.asymmetric("imdb", 0.2)
    )
    torch.testing.assert_close(
        noise.transition_matrix_for("cifar10", "none", 0.0), torch.eye(10, dtype=torch.float64)
    )


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: noise.symmetric(10, 1.0), r"N must be a number in \[0, 1\)"),
        (lambda: noise.symmetric(10, -0.1), r"N must be a number in \[0, 1\)"),
        (lambda: noise.symmetric(10, float("nan")), r"N must be a number in \[0, 1\)"),
        (lambda: noise.symmetric(10, 0.9), r"singular at N = \(C-1\)/C = 0.9"),
        (lambda: noise.symmetric(2, 0.5), r"singular at N = \(C-1\)/C = 0.5"),
        (lambda: noise.symmetric(1, 0.1), "num_classes must be an integer >= 2"),
        (
            lambda: noise.asymmetric("mnist", 0.5),
            r"5 -> 6 -> 5 form a cycle of even length 2: T is singular at N = 0.5",
        ),
        (lambda: noise.asymmetric("cifar10", 0.5), r"3 -> 5 -> 3 form a cycle .* singular at N = 0.5"),
        (lambda: noise.pair_flips(4, [(0, 1), (1, 2), (2, 3), (3, 0)], 0.5), "cycle of even length 4"),
        (lambda: noise.asymmetric("imdb", 0.95), "singular at N = 0.95"),
        (
            lambda: noise.asymmetric("svhn", 0.2),
            "unknown asymmetric noise 'svhn'; known: mnist, cifar10, cifar100",
        ),
        (lambda: noise.pair_flips(4, [(0, 1), (0, 2)], 0.2), "class 0 is the source of two flips"),
        (lambda: noise.pair_flips(4, [(0, 4)], 0.2), r"class 4 is not an integer in \[0, 4\)"),
        (lambda: noise.pair_flips(4, [(2, 2)], 0.2), "flips class 2 to itself"),
        (
            lambda: noise.transition_matrix_for("svhn", "symmetric", 0.2),
            "unknown dataset 'svhn'; known: mnist5k",
        ),
        (
            lambda: noise.transition_matrix_for("mnist", "pairflip", 0.2),
            "unknown noise 'pairflip'; known: none",
        ),
        (lambda: noise.transition_matrix_for("mnist", "none", 0.2), "noise 'none' means N = 0"),
    ],
)
def test_builders_reject_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_odd_cycle_at_half_is_invertible():
    T = noise.pair_flips(3, [(0, 1), (1, 2), (2, 0)], 0.5)  # det = (1-N)^3 + N^3 = 0.25
    assert torch.linalg.det(T).item() == pytest.approx(0.25)


# ------------------------------------------------------------------------------ the catalogue and registry


def test_noise_kinds_and_data_sets_come_from_the_catalogue():
    assert noise.NOISE_KINDS == tuple(catalog.NOISE_KINDS)[:3] == ("none", "symmetric", "asymmetric")
    assert set(catalog.NOISE_KINDS) == {*noise.NOISE_KINDS, *catalog.HUMAN_NOISE}  # CIFAR-N's: no T to build
    assert not hasattr(noise, "DATASETS") and "DATASETS" not in noise.__all__
    for name in ("mnist5k", "mnist", "imdb", "cifar10", "cifar100"):
        info = pyrobust.get_dataset(name)
        C = info.num_classes
        assert_valid(noise.transition_matrix_for(name, "none", 0.0), C)
        torch.testing.assert_close(
            noise.transition_matrix_for(name, "symmetric", 0.2), noise.symmetric(C, 0.2)
        )
        torch.testing.assert_close(
            noise.transition_matrix_for(name, "asymmetric", 0.2), noise.asymmetric(info.noise, 0.2)
        )


@pytest.fixture
def register():
    """``register(name, **info)``: pyrobust.register_dataset, unregistered after the test."""
    names = []

    def add(name, **info):
        names.append(name)
        return pyrobust.register_dataset(name, lambda root: None, **info)

    yield add
    for name in names:
        pyrobust.registry.DATASETS.unregister(name)


def test_transition_matrix_for_a_registered_data_set(register):
    register("toy5", num_classes=5)  # no asymmetric structure
    register("digits_again", num_classes=10, noise="mnist")
    register("digits_mismatch", num_classes=3, noise="mnist")
    torch.testing.assert_close(noise.transition_matrix_for("toy5", "symmetric", 0.2), noise.symmetric(5, 0.2))
    assert_valid(noise.transition_matrix_for("toy5", "none", 0.0), 5)
    with pytest.raises(ValueError, match="data set 'toy5' has no asymmetric noise structure"):
        noise.transition_matrix_for("toy5", "asymmetric", 0.2)
    torch.testing.assert_close(
        noise.transition_matrix_for("digits_again", "asymmetric", 0.2), noise.asymmetric("mnist", 0.2)
    )
    with pytest.raises(ValueError, match="'digits_mismatch' has 3 classes but its asymmetric noise 'mnist'"):
        noise.transition_matrix_for("digits_mismatch", "asymmetric", 0.2)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; known: .*toy5"):
        noise.transition_matrix_for("svhn", "symmetric", 0.2)
