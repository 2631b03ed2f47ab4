"""pyrobust.noise.sampling: corrupt() draws noisy labels from T, noise_rate() measures them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrobust import noise


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
