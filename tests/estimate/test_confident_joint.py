"""pyrobust.estimate.confident_joint: cleanlab's confident joint (Northcutt et al., JAIR 2021)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyrobust
from pyrobust import estimate_transition_matrix, estimation_error, noise
from pyrobust.estimate.confident_joint import confident_joint, confident_joint_counts


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
    ours = confident_joint_counts(torch.from_numpy(probs), torch.from_numpy(labels), calibrate=False)
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


def test_the_function_is_the_registered_estimator():
    probs, labels, _ = cleanlab_problem(3)
    entry = pyrobust.get_estimator("confident_joint")
    assert entry.needs_labels and entry.function == "pyrobust.estimate.confident_joint:confident_joint"
    P, y = torch.from_numpy(probs), torch.from_numpy(labels)
    T_hat = confident_joint(P, labels=y)
    torch.testing.assert_close(
        T_hat, estimate_transition_matrix(probs, method="confident_joint", labels=labels), rtol=0, atol=0
    )
    # always row-normalised; the calibrated joint sums to n, column j to the number labelled j
    torch.testing.assert_close(
        estimate_transition_matrix(probs, method="confident_joint", labels=labels, row_normalize=False),
        T_hat,
        rtol=0,
        atol=0,
    )
    joint = confident_joint_counts(P, y)
    torch.testing.assert_close(joint.sum(dim=0), torch.bincount(y, minlength=10).double())
    torch.testing.assert_close(T_hat, joint / joint.sum(dim=1, keepdim=True), rtol=0, atol=0)
