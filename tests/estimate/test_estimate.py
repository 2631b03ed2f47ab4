"""pyrobust.estimate: estimate_transition_matrix (validation shared by every estimator, dispatch through
the registry) and estimation_error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from posteriors import planted

import pyrobust
from pyrobust import estimate_transition_matrix, estimation_error, noise


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


# ----------------------------------------------------------------------------------- registry dispatch


@pytest.fixture
def register():
    """``register(name, function, **info)``: pyrobust.register_estimator, unregistered after the test."""
    names = []

    def add(name, function, **info):
        names.append(name)
        return pyrobust.register_estimator(name, function, **info)

    yield add
    for name in names:
        pyrobust.registry.ESTIMATORS.unregister(name)


PROBS = torch.tensor([[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]])  # exact in every float dtype


def test_a_registered_estimator_is_dispatched_with_validated_arguments(register):
    calls = []

    def first_rows(probs, *, labels=None, quantile, filter_outliers, row_normalize, **options):
        """A toy estimator: the first C examples are the anchors; returns a NumPy array."""
        calls.append(
            dict(
                probs=probs,
                labels=labels,
                quantile=quantile,
                filter_outliers=filter_outliers,
                row_normalize=row_normalize,
                options=options,
            )
        )
        return probs[: probs.shape[1]].numpy()

    register("first_rows", first_rows, label="first C rows")
    assert "first_rows" in pyrobust.list_estimators()
    labels = np.array([0, 1, 1], dtype=np.int32)
    T_hat = estimate_transition_matrix(
        PROBS.half(), 1, method="first_rows", labels=labels, filter_outliers=False
    )
    assert isinstance(T_hat, torch.Tensor) and T_hat.dtype == torch.float64 and T_hat.shape == (2, 2)
    torch.testing.assert_close(T_hat, PROBS[:2].double(), rtol=0, atol=0)
    (call,) = calls
    assert call["probs"].dtype == torch.float32  # half precision upcast before any estimator sees it
    assert call["labels"].dtype == torch.int64 and call["labels"].tolist() == [0, 1, 1]
    assert type(call["quantile"]) is float and call["quantile"] == 1.0
    assert call["filter_outliers"] is False and call["row_normalize"] is True and call["options"] == {}
    # no labels given: the estimator gets None
    estimate_transition_matrix(PROBS, method="first_rows")
    assert calls[-1]["labels"] is None


def test_a_registered_estimator_by_reference_equals_the_builtin(register):
    register("argmax_again", "pyrobust.estimate.percentile:argmax")
    probs, _ = planted(noise.asymmetric("mnist", 0.3), n=500, perfect_fraction=0.1, seed=7)
    torch.testing.assert_close(
        estimate_transition_matrix(probs, method="argmax_again"),
        estimate_transition_matrix(probs, method="argmax"),
        rtol=0,
        atol=0,
    )


def test_registered_estimators_are_held_to_the_contract(register):
    register("needs_y", lambda probs, *, labels, **options: probs[:2], needs_labels=True)
    register("wrong_shape", lambda probs, **options: probs)
    register("not_stochastic", lambda probs, **options: 2 * probs[:2])
    with pytest.raises(ValueError, match="method='needs_y' needs the noisy labels"):
        estimate_transition_matrix(PROBS, method="needs_y")
    estimate_transition_matrix(PROBS, method="needs_y", labels=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match=r"estimator 'wrong_shape' returned shape \(3, 2\); expected 2 x 2"):
        estimate_transition_matrix(PROBS, method="wrong_shape")
    with pytest.raises(ValueError, match="T_hat is not row-stochastic"):
        estimate_transition_matrix(PROBS, method="not_stochastic")
    unnormalised = estimate_transition_matrix(PROBS, method="not_stochastic", row_normalize=False)
    torch.testing.assert_close(unnormalised, 2 * PROBS[:2].double())


def test_unknown_method_lists_the_registered_estimators(register):
    register("mine", lambda probs, **options: probs[:2])
    with pytest.raises(
        ValueError, match=r"unknown estimation method 'median'; known: percentile, .*\bmine\b"
    ):
        estimate_transition_matrix(PROBS, method="median")
    pyrobust.registry.ESTIMATORS.unregister("mine")
    with pytest.raises(ValueError, match="unknown estimation method 'mine'"):
        estimate_transition_matrix(PROBS, method="mine")
