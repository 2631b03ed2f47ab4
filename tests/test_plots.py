"""pyrobust.plots: T and T_hat side by side as annotated heat maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrobust import noise, plot_transition_matrices

pytest.importorskip("seaborn")


def estimate_like(T: torch.Tensor) -> torch.Tensor:
    T_hat = T + 0.05 * torch.rand(T.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return T_hat / T_hat.sum(dim=1, keepdim=True)


def test_draws_both_matrices_with_values_and_saves_png(tmp_path):
    T = noise.asymmetric("cifar10", 0.4)
    T_hat = estimate_like(T)
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    figure = plot_transition_matrices(T, T_hat, class_names=names, path=tmp_path / "T.png", title="CIFAR-10")

    heat_maps = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in heat_maps] == ["T (true)", "$\\hat{T}$ (estimated)"]
    for ax, matrix in zip(heat_maps, (T, T_hat)):
        np.testing.assert_allclose(ax.collections[0].get_array().reshape(10, 10), matrix.numpy())
        assert [float(t.get_text()) for t in ax.texts] == pytest.approx(matrix.flatten().tolist(), abs=0.005)
        assert [t.get_text() for t in ax.get_yticklabels()] == names
    mae = (T_hat - T).abs().mean().item()
    assert figure._suptitle.get_text().startswith(f"CIFAR-10: MAE {mae:.4f}")
    assert (tmp_path / "T.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_classes_without_values_and_into_given_axes():
    from matplotlib.figure import Figure

    T = noise.asymmetric("cifar100", 0.4)
    figure = Figure()
    axes = figure.subplots(1, 2)
    assert plot_transition_matrices(T, T, ax=axes) is figure
    assert all(len(ax.texts) == 0 for ax in axes)
    assert "MAE 0.0000, max row L1 0.0000" in figure._suptitle.get_text()


def test_bad_inputs():
    T = noise.symmetric(3, 0.2)
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        plot_transition_matrices(T, T, class_names=["a", "b"])
    with pytest.raises(ValueError, match="T is 3 x 3 but T_hat is 2 x 2"):
        plot_transition_matrices(T, torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="T is not row-stochastic"):
        plot_transition_matrices(2 * T, T)
    with pytest.raises(ValueError, match="ax must hold two axes"):
        plot_transition_matrices(T, T, ax=[None])
