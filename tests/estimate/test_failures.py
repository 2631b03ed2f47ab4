"""The failure modes every estimator says out loud, naming the class (EstimationWarning)."""

import warnings

import pytest
import torch

from pyrobust.estimate import EstimationWarning, estimate_transition_matrix


def probs_without_class(C=4, n=400, missing=2):
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(n, C, generator=g, dtype=torch.float64)
    logits[:, missing] = -10.0  # class `missing` is never predicted
    return torch.softmax(logits, dim=1)


@pytest.mark.parametrize("method", ["percentile", "argmax", "dual_t", "vertex"])
def test_a_class_never_predicted_is_named(method):
    probs = probs_without_class()
    labels = torch.arange(len(probs)) % 4
    with pytest.warns(EstimationWarning, match="class 2"):
        estimate_transition_matrix(probs, method=method, labels=labels)


def test_a_class_rarer_than_the_percentile_tail_is_named():
    C, n = 4, 1000
    probs = torch.full((n, C), 0.02, dtype=torch.float64)
    probs[torch.arange(n), torch.arange(n) % 3] = 0.94  # classes 0-2 only...
    probs[:10] = torch.tensor([0.02, 0.02, 0.02, 0.94], dtype=torch.float64)  # ...and 1% of class 3
    with pytest.warns(EstimationWarning, match="class 3 is predicted for 10 of 1000"):
        estimate_transition_matrix(probs, 0.97)
    with warnings.catch_warnings():  # the argmax needs only one example
        warnings.simplefilter("error", EstimationWarning)
        estimate_transition_matrix(probs, method="argmax")


def test_labels_of_the_wrong_length_are_refused_even_where_unused():
    probs = torch.full((6, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        estimate_transition_matrix(probs, labels=torch.zeros(5, dtype=torch.int64))
