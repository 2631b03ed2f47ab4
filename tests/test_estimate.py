"""pyrobust.estimate: the paper's estimator of T (section 4.3, eqs. 12-13; alpha-percentile of section 5.1),
cleanlab's confident joint, and estimation_error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrobust import estimate_transition_matrix, estimation_error, noise
from pyrobust.estimate import _confident_joint


def planted(T: torch.Tensor, n: int, perfect_fraction: float, seed: int, confidence: float = 1.0):
    """Noisy posteriors p(noisy | x) = p(y | x) T (eq. 11) for n examples, with a share perfect_fraction of
    each class's examples "perfect" (p(y = i | x) >= confidence; = 1 when confidence is 1) and the rest
    random mixtures whose largest clean probability is below 0.6. Returns (probs, clean labels)."""
    g = torch.Generator().manual_seed(seed)
    C = T.shape[0]
    clean = torch.arange(n) % C
    exponentials = -torch.rand(n, C, generator=g, dtype=torch.float64).log()
    mixtures = exponentials / exponentials.sum(dim=1, keepdim=True)  # Dirichlet(1, ..., 1)
    mixtures = 0.4 * mixtures + 0.6 / C  # largest clean probability below 0.6
    is_perfect = torch.rand(n, generator=g) < perfect_fraction
    is_perfect[:C] = True  # at least one per class (clean[:C] = 0 .. C-1)
    onehot = torch.nn.functional.one_hot(clean, C).double()
    conf = confidence + (1 - confidence) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    rest = torch.rand(n, C, generator=g, dtype=torch.float64) * (1 - onehot)
    near_onehot = conf * onehot + (1 - conf) * rest / rest.sum(dim=1, keepdim=True)
    p_clean = torch.where(is_perfect[:, None], near_onehot, mixtures)
    return p_clean @ T, clean


DIAGONALLY_DOMINANT = [
    noise.asymmetric("mnist", 0.3),
    noise.symmetric(10, 0.4),
    noise.asymmetric("cifar100", 0.4),
]


@pytest.mark.parametrize("T", DIAGONALLY_DOMINANT, ids=["mnist0.3", "sym0.4", "cifar100_0.4"])
def test_argmax_recovers_T_exactly_from_perfect_examples(T):
    probs, _ = planted(T, n=20 * T.shape[0], perfect_fraction=0.05, seed=0)
    T_hat = estimate_transition_matrix(probs, method="argmax")
    torch.testing.assert_close(T_hat, T, rtol=0, atol=1e-12)
    # filter_outliers=False is the same estimator, and so is the percentile at quantile 1
    torch.testing.assert_close(
        estimate_transition_matrix(probs, filter_outliers=False), T_hat, rtol=0, atol=0
    )
    torch.testing.assert_close(estimate_transition_matrix(probs, 1.0), T_hat, rtol=0, atol=0)


@pytest.mark.parametrize("T", DIAGONALLY_DOMINANT[:2], ids=["mnist0.3", "sym0.4"])
def test_percentile_recovers_T_exactly_when_over_3_percent_are_perfect(T):
    # The top 3% of column i are then all perfect examples of class i (value T[i, i]), so the
    # 97%-quantile anchor is one of them: 60% perfect examples over 10 classes is ~6% of n per class.
    probs, _ = planted(T, n=5000, perfect_fraction=0.6, seed=1)
    T_hat = estimate_transition_matrix(probs, 0.97)
    torch.testing.assert_close(T_hat, T, rtol=0, atol=1e-12)


def test_percentile_needs_3_percent_per_class_hence_argmax_for_cifar100():
    # With 100 classes each holds ~1% of the examples, so the 97% quantile of a column falls outside the
    # perfect examples of its class: why the paper uses the argmax on CIFAR-100.
    T = noise.asymmetric("cifar100", 0.4)
    probs, _ = planted(T, n=6000, perfect_fraction=0.5, seed=6)
    torch.testing.assert_close(estimate_transition_matrix(probs, method="argmax"), T, rtol=0, atol=1e-12)
    assert estimation_error(estimate_transition_matrix(probs, 0.97), T)["max_row_l1"] > 0.5


@pytest.mark.parametrize("T", DIAGONALLY_DOMINANT[:2], ids=["mnist0.3", "sym0.4"])
def test_percentile_within_tolerance_from_nearly_perfect_examples(T):
    # Anchors with p(y = i | x) >= c give a row p(y | x) T within L1 distance 2 (1 - c) of T[i]; row
    # normalisation does not change a row that already sums to 1.
    c = 0.95
    C = T.shape[0]
    probs, _ = planted(T, n=60 * C, perfect_fraction=0.5, seed=2, confidence=c)
    error = estimation_error(estimate_transition_matrix(probs, 0.97), T)
    assert error["max_row_l1"] <= 2 * (1 - c) + 1e-12
    assert error["mae"] <= 2 * (1 - c) / C + 1e-12


def test_argmax_fails_as_predicted_when_T_is_not_diagonally_dominant():
    # N = 0.6 > 0.5: column 7 peaks at the perfect example of class 2 (T[2, 7] = 0.6 > T[7, 7] = 0.4).
    T = noise.asymmetric("mnist", 0.6)
    probs, _ = planted(T, n=400, perfect_fraction=0.1, seed=3)
    T_hat = estimate_transition_matrix(probs, method="argmax")
    torch.testing.assert_close(T_hat[7], T[2], rtol=0, atol=1e-12)


def reference_percentile(probs: np.ndarray, q: float) -> np.ndarray:
    """The estimator written as a loop over classes on a fresh copy (what the authors' code meant):
    anchor = first example whose value equals np.quantile(column, q, method="higher")."""
    rows = []
    for i in range(probs.shape[1]):
        column = probs[:, i].copy()
        value = np.quantile(column, q, method="higher")
        if q == 0.97:  # np.percentile's 97 / 100 is the same float as 0.97 (not so for every q)
            assert value == np.percentile(column, 97, method="higher")  # NumPy 2 spells it method=
        rows.append(probs[np.flatnonzero(column == value)[0]])
    T_hat = np.array(rows, dtype=np.float64)
    return T_hat / T_hat.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n", [1, 2, 34, 101, 1001, 4097])
@pytest.mark.parametrize("q", [0.97, 0.5, 0.999])
def test_percentile_matches_numpy_higher_quantile(n, q):
    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(6), size=n).astype(np.float32)
    probs[rng.integers(0, n, size=n // 3), 2] = probs[0, 2]  # ties: the first example wins
    probs /= probs.sum(axis=1, keepdims=True)
    T_hat = estimate_transition_matrix(probs, q)
    np.testing.assert_allclose(T_hat.numpy(), reference_percentile(probs, q), rtol=0, atol=1e-15)


def test_does_not_mutate_probs_unlike_the_authors_view_bug():
    rng = np.random.default_rng(0)
    array = rng.dirichlet(np.ones(5) * 0.3, size=2000)
    before = array.copy()
    tensor = torch.from_numpy(array.copy())
    for method in ("percentile", "argmax", "confident_joint"):
        estimate_transition_matrix(array, method=method, labels=array.argmax(axis=1))
        estimate_transition_matrix(tensor, method=method, labels=tensor.argmax(dim=1))
    np.testing.assert_array_equal(array, before)
    np.testing.assert_array_equal(tensor.numpy(), before)
    # Calling twice gives the same answer (the authors' code zeroes the top 3% of each column in place).
    first = estimate_transition_matrix(array)
    torch.testing.assert_close(estimate_transition_matrix(array), first, rtol=0, atol=0)


def test_beyond_torch_quantile_input_limit():
    n = 2**24 + 3  # torch.quantile rejects inputs this large
    probs = torch.rand(n, 2)
    probs /= probs.sum(dim=1, keepdim=True)
    T_hat = estimate_transition_matrix(probs, 0.97)
    rank = -(-(n - 1) * 97 // 100)  # ceil((n-1) q) in exact integer arithmetic
    for i in range(2):
        column = probs[:, i].numpy()
        value = np.partition(column, rank)[rank]
        anchor = np.flatnonzero(column == value)[0]
        torch.testing.assert_close(
            T_hat[i], (probs[anchor] / probs[anchor].sum()).double(), rtol=0, atol=1e-7
        )


def test_dtypes_and_containers():
    probs, _ = planted(noise.symmetric(4, 0.2), n=400, perfect_fraction=0.2, seed=4)
    reference = estimate_transition_matrix(probs)
    for given in (probs.numpy(), probs.float(), probs.half(), probs.bfloat16()):
        T_hat = estimate_transition_matrix(given)
        assert isinstance(T_hat, torch.Tensor) and T_hat.dtype == torch.float64 and T_hat.shape == (4, 4)
        torch.testing.assert_close(T_hat, reference, rtol=0, atol=1e-2)
    unnormalised = estimate_transition_matrix(probs.float(), row_normalize=False)
    assert unnormalised.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    probs, clean = planted(noise.asymmetric("cifar100", 0.3), n=20_000, perfect_fraction=0.1, seed=5)
    labels = noise.corrupt(clean, noise.asymmetric("cifar100", 0.3), seed=0)
    for method in ("percentile", "argmax", "confident_joint"):
        cpu = estimate_transition_matrix(probs.float(), method=method, labels=labels)
        gpu = estimate_transition_matrix(probs.float().cuda(), method=method, labels=labels.cuda())
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ confident joint


def cleanlab_problem(seed: int):
    T = noise.asymmetric("mnist", 0.3)
    g = torch.Generator().manual_seed(seed)
    n, C = 6000, 10
    clean = torch.arange(n) % C
    logits = torch.randn(n, C, generator=g, dtype=torch.float64)
    logits[torch.arange(n), clean] += 2.5
    probs = logits.softmax(dim=1) @ T
    labels = noise.corrupt(clean, T, seed=seed)
    return probs.numpy(), labels.numpy(), T


@pytest.mark.parametrize("seed", [0, 1])
def test_confident_joint_matches_cleanlab(seed):
    cleanlab_count = pytest.importorskip("cleanlab.count")
    probs, labels, _ = cleanlab_problem(seed)
    raw = cleanlab_count.compute_confident_joint(labels, probs, calibrate=False)  # [given, true]
    ours = _confident_joint(torch.from_numpy(probs), torch.from_numpy(labels), calibrate=False)
    np.testing.assert_array_equal(ours.numpy(), raw.T)

    _, noise_matrix, _, calibrated = cleanlab_count.estimate_py_and_noise_matrices_from_probabilities(
        labels, probs
    )
    T_hat = estimate_transition_matrix(probs, method="confident_joint", labels=labels)
    # cleanlab rounds the calibrated joint to integers (each entry moves by < 1 count), so P(given | true)
    # can differ by up to (1 + C) / (count of the true class), here about 2e-2 at most; much less in practice.
    C = probs.shape[1]
    tolerance = (1 + C) / calibrated.sum(axis=0).min()
    np.testing.assert_allclose(T_hat.numpy(), noise_matrix.T, rtol=0, atol=tolerance)
    assert np.abs(T_hat.numpy() - noise_matrix.T).mean() < 2e-3


def test_confident_joint_estimates_T():
    probs, labels, T = cleanlab_problem(2)
    assert (
        estimation_error(estimate_transition_matrix(probs, method="confident_joint", labels=labels), T)["mae"]
        < 0.02
    )


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(probs=torch.randn(10, 3)),
            ValueError,
            r"probabilities in \[0, 1\] \(softmax outputs, not logits\)",
        ),
        (dict(probs=torch.full((10, 3), 0.5)), ValueError, "row 0 sums to 1.5"),
        (dict(probs=torch.ones(10)), ValueError, "n x C"),
        (dict(probs=torch.ones(10, 1)), ValueError, "C >= 2"),
        (dict(probs=torch.ones(10, 2, dtype=torch.int64)), TypeError, "floating point"),
        (dict(probs=torch.tensor([[0.5, float("nan")]])), ValueError, "non-finite"),
        (dict(quantile=97), ValueError, r"a fraction such as 0.97, not 97"),
        (dict(quantile=0.0), ValueError, r"quantile must be in \(0, 1\]"),
        (dict(method="median"), ValueError, "unknown estimation method 'median'; known: percentile, argmax"),
        (dict(method="confident_joint"), ValueError, "needs the noisy labels"),
        (
            dict(method="confident_joint", labels=torch.zeros(3, dtype=torch.int64)),
            ValueError,
            r"shape \(4,\)",
        ),
        (
            dict(method="confident_joint", labels=torch.tensor([0, 1, 0, 2])),
            ValueError,
            r"class 2 outside \[0, 2\)",
        ),
        (
            dict(method="confident_joint", labels=torch.tensor([0, 0, 0, 0])),
            ValueError,
            r"classes \[1\] have none",
        ),
    ],
)
def test_bad_inputs_raise_clearly(kwargs, error, message):
    arguments = dict(probs=torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        estimate_transition_matrix(**arguments)


def test_estimation_error_by_hand():
    T = torch.tensor([[0.8, 0.2], [0.1, 0.9]], dtype=torch.float64)
    T_hat = np.array([[0.7, 0.3], [0.1, 0.9]])
    error = estimation_error(T_hat, T)
    assert error["mae"] == pytest.approx(0.05) and error["max_row_l1"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="same C"):
        estimation_error(np.eye(3), T)
