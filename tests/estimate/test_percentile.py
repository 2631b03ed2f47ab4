"""pyrobust.estimate.percentile: the paper's estimator of T (section 4.3, eqs. 12-13; alpha-percentile of
section 5.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from posteriors import planted

import pyrobust
from pyrobust import estimate_transition_matrix, estimation_error, noise
from pyrobust.estimate.percentile import argmax, percentile

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


def test_the_functions_are_the_registered_estimators():
    probs, _ = planted(noise.asymmetric("cifar10", 0.4), n=2000, perfect_fraction=0.2, seed=8)
    assert pyrobust.get_estimator("percentile").function == "pyrobust.estimate.percentile:percentile"
    assert pyrobust.get_estimator("argmax").function == "pyrobust.estimate.percentile:argmax"
    for quantile in (0.97, 0.5, 1.0):
        torch.testing.assert_close(
            percentile(probs, quantile=quantile), estimate_transition_matrix(probs, quantile), rtol=0, atol=0
        )
    torch.testing.assert_close(
        argmax(probs), estimate_transition_matrix(probs, method="argmax"), rtol=0, atol=0
    )
    torch.testing.assert_close(percentile(probs, filter_outliers=False), argmax(probs), rtol=0, atol=0)
    raw = argmax(probs, row_normalize=False)
    torch.testing.assert_close(raw, probs[probs.argmax(dim=0)], rtol=0, atol=0)
