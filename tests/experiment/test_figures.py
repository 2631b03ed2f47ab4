"""pyrobust.experiment.figures: figures are written whole through the atomic writer."""

import numpy as np
import pandas as pd

from pyrobust.experiment.figures import plot_paper_vs_ours, plot_transition_estimates, save_figure


def test_save_figure_writes_a_png_through_the_atomic_writer(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "figures" / "line.png")
    assert path.read_bytes().startswith(b"\x89PNG") and [p.name for p in path.parent.iterdir()] == ["line.png"]


def test_no_figure_without_data(tmp_path):
    table = pd.DataFrame({"paper_mean": [np.nan], "mean": [90.0]})
    assert plot_paper_vs_ours(table, tmp_path / "paper_vs_ours.png") is None
    runs = pd.DataFrame({"T_hat": [None], "noise": ["asymmetric"], "dataset": ["mnist5k"], "model": ["fc"],
                         "method": ["forward_est"]})
    assert plot_transition_estimates(runs, tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


def test_estimator_heat_maps_one_figure_per_network_at_the_highest_noise(tmp_path):
    from pyrobust.experiment.figures import plot_estimator_heat_maps

    T = np.eye(3).tolist()
    rows = [
        {"dataset": "mnist5k", "model": "fc", "method": method, "noise": noise, "N": N, "seed": seed,
         "T": T, "T_hat": T}
        for method in ("forward_est", "forward_vertex", "volminnet", "cross_entropy")
        for noise, N in (("symmetric", 0.2), ("asymmetric", 0.6))
        for seed in (0, 1)
    ]
    runs = pd.DataFrame(rows)
    runs.loc[runs["method"] == "cross_entropy", "T_hat"] = None
    written = plot_estimator_heat_maps(runs, tmp_path)
    assert list(written) == ["T_hat_by_estimator_mnist5k_fc"]
    assert written["T_hat_by_estimator_mnist5k_fc"].read_bytes().startswith(b"\x89PNG")
    assert plot_estimator_heat_maps(runs[runs["method"] == "cross_entropy"], tmp_path / "none") == {}
