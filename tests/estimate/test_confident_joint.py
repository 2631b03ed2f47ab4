"""pyrobust.estimate.confident_joint: the confident joint (Northcutt et al., JAIR 2021), by the paper's rule
(eq. 1) and by cleanlab's, which cleanlab's own code is the reference for."""

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
    ours = confident_joint_counts(torch.from_numpy(probs), torch.from_numpy(labels), calibrate=False,
                                  rule="cleanlab")
    np.testing.assert_array_equal(ours.numpy(), raw.T)

    _, noise_matrix, _, calibrated = cleanlab_count.estimate_py_and_noise_matrices_from_probabilities(
        labels, probs
    )
    T_hat = estimate_transition_matrix(probs, method="confident_joint_cleanlab", labels=labels)
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


def two_rule_problem():
    """Thresholds (0.02, 0.9, 0.034, 0.9) and one example with probabilities (0.1, 0.2, 0.3, 0.4), label 2."""
    rows = [
        ((0.02, 0.98, 0.0, 0.0), 0),  # t_0 = 0.02
        ((0.0, 0.9, 0.0, 0.1), 1),  # t_1 = 0.9
        ((0.0, 0.1, 0.0, 0.9), 3),  # t_3 = 0.9
        ((0.1, 0.2, 0.3, 0.4), 2),  # the example
        *[((1 - 0.04 / 9, 0.0, 0.04 / 9, 0.0), 2)] * 9,  # t_2 = (0.3 + 9 * 0.04 / 9) / 10 = 0.034
    ]
    probs = torch.tensor([p for p, _ in rows], dtype=torch.float64)
    labels = torch.tensor([y for _, y in rows])
    return probs, labels


def test_the_papers_rule_takes_the_argmax_over_the_confident_classes_only():
    probs, labels = two_rule_problem()
    paper = confident_joint_counts(probs, labels, calibrate=False, rule="paper")
    cleanlab = confident_joint_counts(probs, labels, calibrate=False, rule="cleanlab")
    # classes 0 (0.1 >= 0.02) and 2 (0.3 >= 0.034) pass; 3 (0.4 < 0.9) does not
    assert cleanlab[3, 2] - paper[3, 2] == 1  # cleanlab counts the example as a true 3
    # the paper counts it as a true 2, the only one: J[2, 2] = 1; cleanlab's empty diagonal is raised to 1
    assert paper[2, 2] == 1 == cleanlab[2, 2]
    assert (paper - cleanlab).abs().sum() == 1  # nothing else differs
    cleanlab_count = pytest.importorskip("cleanlab.count")
    raw = cleanlab_count.compute_confident_joint(labels.numpy(), probs.numpy(), calibrate=False)
    np.testing.assert_array_equal(cleanlab.numpy(), raw.T)


def test_the_default_estimator_is_the_papers_rule():
    probs, labels = two_rule_problem()
    assert pyrobust.get_estimator("confident_joint").function.endswith(":confident_joint")
    expected = confident_joint_counts(probs, labels, rule="paper")
    expected = expected / expected.sum(dim=1, keepdim=True)
    with pytest.warns(pyrobust.estimate.EstimationWarning):  # few confident examples per class here
        T_hat = estimate_transition_matrix(probs, method="confident_joint", labels=labels)
    torch.testing.assert_close(T_hat, expected)


def test_an_unknown_rule_is_an_error():
    probs, labels = two_rule_problem()
    with pytest.raises(ValueError, match="rule must be"):
        confident_joint_counts(probs, labels, rule="majority")
