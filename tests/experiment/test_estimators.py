"""The estimator comparison (reports/estimators.csv): records grouped by estimator, means and sample stds
over seeds computed here with NumPy, the best forward accuracy bolded."""

import numpy as np
import pandas as pd
import pytest

from pyrobust.experiment.estimators import ESTIMATOR_COLUMNS, estimator_markdown, estimator_of, estimator_table

T = np.eye(2).tolist()


def run(method, seed, accuracy, mae, noise="asymmetric", N=0.6):
    return {"dataset": "mnist5k", "model": "fc", "method": method, "noise": noise, "N": N, "seed": seed,
            "test_accuracy": accuracy, "T": T, "T_hat": T, "estimation_error": {"mae": mae, "max_row_l1": 2 * mae}}


def test_estimator_of_names_the_estimator_and_the_kind():
    assert estimator_of("forward_est", "mnist5k") == ("percentile", "forward")
    assert estimator_of("backward_est", "cifar100") == ("argmax", "backward")
    assert estimator_of("forward_vertex", "mnist5k") == ("vertex", "forward")
    assert estimator_of("backward_dual_t", "mnist5k") == ("dual_t", "backward")
    assert estimator_of("t_revision", "mnist5k") == ("t_revision", "learned")
    assert estimator_of("volminnet", "mnist5k") == ("volminnet", "learned")
    assert estimator_of("forward", "mnist5k") is None and estimator_of("cross_entropy", "mnist5k") is None


def test_rows_per_estimator_with_means_and_stds_over_seeds():
    runs = pd.DataFrame([
        run("forward_est", 0, 60.0, 0.03), run("forward_est", 1, 64.0, 0.02),
        run("backward_est", 0, 50.0, 0.03), run("backward_est", 1, 56.0, 0.02),
        run("forward_vertex", 0, 80.0, 0.01), run("forward_vertex", 1, 84.0, 0.012),
        run("volminnet", 0, 70.0, 0.05), run("volminnet", 1, 71.0, 0.06),
        run("cross_entropy", 0, 55.0, 0.03),  # no estimate of its own: not a row
    ])
    table = estimator_table(runs)
    assert list(table.columns) == ESTIMATOR_COLUMNS
    assert list(table["estimator"]) == ["percentile", "vertex", "volminnet"]
    paper = table.iloc[0]
    assert paper["forward_accuracy"] == 62.0 and paper["forward_accuracy_std"] == pytest.approx(np.std([60, 64], ddof=1))
    assert paper["backward_accuracy"] == 53.0 and paper["mae"] == pytest.approx(0.025)
    assert paper["max_row_l1"] == pytest.approx(0.05) and paper["runs"] == 2
    assert np.isnan(table.iloc[2]["backward_accuracy"])  # a method that learns T has only its own accuracy
    assert table.iloc[2]["forward_accuracy"] == 70.5
    from scipy.stats import ttest_ind

    top = [80.0, 84.0]
    expected = ["bold" if ttest_ind(s, top, equal_var=False).pvalue >= 0.05 else "" for s in ([60, 64], [70, 71])]
    assert list(table["mark"]) == [expected[0], "bold", expected[1]]  # Table 2's rule (Welch, p >= 0.05)
    assert expected[0] == ""
    lines = "\n".join(estimator_markdown(table))
    assert "## Estimators of T" in lines and "**82.0 ± 2.8** (0.011)" in lines and "VolMinNet (learns T)" in lines


def test_no_estimate_no_rows():
    table = estimator_table(pd.DataFrame([run("cross_entropy", 0, 55.0, 0.03)]))
    assert table.empty and list(table.columns) == ESTIMATOR_COLUMNS and estimator_markdown(table) == []
