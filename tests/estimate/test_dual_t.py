"""Dual-T (Yao et al., NeurIPS 2020): T_hat = T_clubs @ T_spades, the second factor counted."""

import numpy as np
import pytest
import torch

import pyrobust
from pyrobust.estimate import EstimationWarning, estimate_transition_matrix
from pyrobust.estimate.dual_t import predicted_to_noisy


def test_T_spades_counts_predicted_against_given_labels():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]],
                         dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0])
    # predicted 0: labels (0, 1); predicted 1: (1); predicted 2: (2, 0)
    expected = [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    np.testing.assert_allclose(predicted_to_noisy(probs, labels).numpy(), expected)


def test_dual_t_is_the_anchor_estimate_times_T_spades():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.randint(0, 4, (500,), generator=g)
    T_clubs = estimate_transition_matrix(probs, method="percentile").numpy()
    pred = probs.argmax(1).numpy()
    T_spades = np.stack([np.bincount(labels.numpy()[pred == k], minlength=4) / (pred == k).sum() for k in range(4)])
    T_hat = estimate_transition_matrix(probs, method="dual_t", labels=labels).numpy()
    np.testing.assert_allclose(T_hat, T_clubs @ T_spades, atol=1e-12)
    np.testing.assert_allclose(T_hat.sum(1), 1.0)


def test_needs_the_labels():
    with pytest.raises(ValueError, match="needs the noisy labels"):
        estimate_transition_matrix(torch.full((4, 2), 0.5), method="dual_t")


def test_a_class_never_predicted_is_named_and_gets_the_identity_row():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.1, 0.3], [0.2, 0.1, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2])
    with pytest.warns(EstimationWarning, match="class 1 is never the predicted class"):
        T_spades = predicted_to_noisy(probs, labels)
    np.testing.assert_allclose(T_spades[1].numpy(), [0.0, 1.0, 0.0])
    assert pyrobust.get_estimator("dual_t").needs_labels
