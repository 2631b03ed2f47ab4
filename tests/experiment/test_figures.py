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
    runs = pd.DataFrame({"T_hat": [None], "noise": ["asymmetric"], "dataset": ["mnist5k"], "model": ["fc"]})
    assert plot_transition_estimates(runs, tmp_path) == {}
    assert list(tmp_path.iterdir()) == []
