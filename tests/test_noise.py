"""pyrobust.noise: the paper's transition matrices (section 5.1), loading/counting T, and corrupt()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrobust import noise

# CIFAR-100 fine classes in index order and the 20 superclasses by member names (the data set's meta file),
# an expectation written independently of pyrobust.noise.CIFAR100_COARSE_LABELS.
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


def expected(C: int, flips: dict[int, int], N: float) -> np.ndarray:
    """T written entry by entry from a flip table: T[a, a] = 1 - N, T[a, b] = N, other rows identity."""
    T = np.eye(C)
    for a, b in flips.items():
        T[a, a], T[a, b] = 1 - N, N
    return T


def assert_valid(T: torch.Tensor, C: int) -> None:
    assert isinstance(T, torch.Tensor) and T.dtype == torch.float64 and T.shape == (C, C)
    assert (T >= 0).all()
    torch.testing.assert_close(T.sum(dim=1), torch.ones(C, dtype=torch.float64), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------- builders


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


# ------------------------------------------------------------------------------------ files and counting


def test_load_transition_matrix_npy_and_csv(tmp_path):
    T = noise.asymmetric("cifar10", 0.3)
    np.save(tmp_path / "T.npy", T.numpy())
    np.savetxt(tmp_path / "T.csv", T.numpy(), delimiter=",")
    torch.testing.assert_close(noise.load_transition_matrix(tmp_path / "T.npy"), T, rtol=0, atol=0)
    torch.testing.assert_close(noise.load_transition_matrix(str(tmp_path / "T.csv")), T, rtol=0, atol=1e-15)


def test_load_transition_matrix_rejects_bad_files_naming_them(tmp_path):
    cases = {
        "pickled.npy": (np.array([{"T": 1}], dtype=object), "pickled.npy"),
        "rect.npy": (np.full((2, 3), 1 / 3), r"rect.npy: transition matrix must be square"),
        "rows.npy": (np.array([[0.5, 0.4], [0.0, 1.0]]), r"rows.npy is not row-stochastic: row 0"),
        "negative.npy": (np.array([[1.5, -0.5], [0.0, 1.0]]), r"negative.npy has a negative entry"),
        "text.npy": (np.array([["a", "b"], ["c", "d"]]), r"text.npy: transition matrix must hold numbers"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(ValueError, match=message):
            noise.load_transition_matrix(tmp_path / name)
    (tmp_path / "bad.csv").write_text("0.5,0.5\n0.5,zebra\n")
    with pytest.raises(ValueError, match="bad.csv"):
        noise.load_transition_matrix(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"T.txt: unsupported transition matrix file type '.txt'"):
        noise.load_transition_matrix(tmp_path / "T.txt")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        noise.load_transition_matrix(tmp_path / "missing.npy")


def test_from_clean_subset_counts_rows():
    clean = np.array([0, 0, 0, 0, 1, 1, 2])
    noisy = np.array([0, 0, 1, 2, 1, 0, 2])
    want = [[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    np.testing.assert_allclose(noise.from_clean_subset(clean, noisy, 3).numpy(), want, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"classes \[3\] have no clean example"):
        noise.from_clean_subset(clean, noisy, 4)
    with pytest.raises(ValueError, match="differ in length"):
        noise.from_clean_subset(clean, noisy[:-1], 3)


# ------------------------------------------------------------------------------------------------ corrupt


@pytest.mark.parametrize(
    "T", [noise.asymmetric("mnist", 0.6), noise.symmetric(10, 0.2), noise.asymmetric("imdb", 0.3)]
)
def test_corrupt_frequencies_match_T(T):
    C, n = T.shape[0], 100_000
    clean = torch.arange(n) % C
    noisy = noise.corrupt(clean, T, seed=3)
    counted = noise.from_clean_subset(clean, noisy, C)
    assert (counted - T).abs().max().item() < 0.01
    assert counted[T == 0].sum() == 0  # impossible flips never happen
    realised = noise.noise_rate(clean, noisy)
    assert realised == pytest.approx(1 - T.diagonal().mean().item(), abs=0.01)


def test_corrupt_is_deterministic_and_independent_of_global_rng():
    T = noise.symmetric(10, 0.4)
    clean = np.random.default_rng(0).integers(0, 10, 20_000)
    torch.manual_seed(0)
    np.random.seed(0)
    first = noise.corrupt(clean, T, seed=7)
    torch.manual_seed(123)
    np.random.seed(123)
    torch.rand(1000)
    np.random.rand(1000)
    again = noise.corrupt(clean, T, seed=7)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, noise.corrupt(clean, T, seed=8))
    # the same draws whatever the container: tensor in, tensor out; array in, array out
    as_tensor = noise.corrupt(torch.from_numpy(clean), T, seed=7)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.int64
    np.testing.assert_array_equal(as_tensor.numpy(), first)
    assert isinstance(first, np.ndarray) and first.dtype == clean.dtype


def test_corrupt_keeps_dtype_and_handles_identity_and_empty():
    clean = np.arange(10, dtype=np.uint8)
    noisy = noise.corrupt(clean, torch.eye(10, dtype=torch.float64), seed=0)
    assert noisy.dtype == np.uint8
    np.testing.assert_array_equal(noisy, clean)
    assert noise.corrupt(torch.empty(0, dtype=torch.int64), noise.symmetric(3, 0.2), seed=0).numel() == 0


@pytest.mark.parametrize(
    "labels, T, seed, error, message",
    [
        (np.array([0, 3]), noise.symmetric(3, 0.2), 0, ValueError, r"class 3 outside \[0, 3\)"),
        (np.array([0.0, 1.0]), noise.symmetric(3, 0.2), 0, TypeError, "integer class indices"),
        (np.zeros((2, 2), dtype=np.int64), noise.symmetric(3, 0.2), 0, ValueError, "must be 1-D"),
        (np.array([0, 1]), np.array([[0.5, 0.6], [0.0, 1.0]]), 0, ValueError, "not row-stochastic"),
        (np.array([0, 1]), noise.symmetric(2, 0.2), -1, ValueError, "seed must be an integer"),
        (np.array([0, 1]), noise.symmetric(2, 0.2), 1.5, ValueError, "seed must be an integer"),
    ],
)
def test_corrupt_rejects_bad_input(labels, T, seed, error, message):
    with pytest.raises(error, match=message):
        noise.corrupt(labels, T, seed)


def test_noise_rate():
    assert noise.noise_rate(np.array([0, 1, 2, 3]), torch.tensor([0, 2, 2, 0])) == 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        noise.noise_rate(np.array([0, 1]), np.array([0]))
