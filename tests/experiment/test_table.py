"""pyrobust.experiment.table: Table 2's bolding rule (Welch's t-test, 0.5 points, * and †), from the catalogue."""

import math

import numpy as np
import pytest
from scipy import stats

import pyrobust
from pyrobust import registry
from pyrobust.experiment.table import best_cells


def welch_t_df(a, b):
    """Welch's t statistic and Welch-Satterthwaite degrees of freedom, from their formulas."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df


def bold(marks):
    return {m for m, mark in marks.items() if "bold" in mark}


def starred(marks):
    return {m for m, mark in marks.items() if "star" in mark}


def daggered(marks):
    return {m for m, mark in marks.items() if "dagger" in mark}


def jitter(mean, sd, n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return list(mean + sd * (x - x.mean()) / x.std(ddof=1))


# ------------------------------------------------------------------------------------ Welch's t-test


def test_welch_separates_a_shift_of_three_sample_sds():
    # t = -3 with 8 degrees of freedom: beyond the two-sided 5% critical value 2.306 of a t-table.
    top, other = [4, 5, 6, 7, 8], [1, 2, 3, 4, 5]
    t, df = welch_t_df(other, top)
    assert (t, df) == pytest.approx((-3.0, 8.0))
    marks = best_cells({"forward_est": top, "cross_entropy": other})
    assert bold(marks) == {"forward_est"}


def test_welch_keeps_a_shift_of_two_sample_sds_bold():
    # t = -2 with 8 degrees of freedom: inside the 5% critical value 2.306, so not statistically far.
    top, other = [3, 4, 5, 6, 7], [1, 2, 3, 4, 5]
    assert welch_t_df(other, top) == pytest.approx((-2.0, 8.0))
    marks = best_cells({"forward_est": top, "cross_entropy": other})
    assert bold(marks) == {"forward_est", "cross_entropy"}


def test_welch_not_students_t_for_unequal_variances():
    # t = 2.47: Student's pooled test (8 df, critical 2.306) would call it significant, Welch's
    # (about 4 df, critical 2.776) does not -- the paper's rule is Welch's.
    top = [90.0, 90.2, 89.8, 90.1, 89.9]
    other = [82.5, 84.5, 86.5, 88.5, 90.5]
    t, df = welch_t_df(top, other)
    assert 2.306 < t < 2.776 and df == pytest.approx(4.02, abs=0.01)
    assert stats.t.sf(t, 8) * 2 < 0.05 < stats.t.sf(t, df) * 2
    assert bold(best_cells({"savage": top, "sigmoid_bn": other})) == {"savage", "sigmoid_bn"}


def test_identical_constant_columns_are_all_bold():
    # zero variance and equal means: the t-test is undefined (nan), the cells are not far apart
    marks = best_cells({m: [97.9] * 5 for m in ("cross_entropy", "savage", "bootstrap_soft")})
    assert bold(marks) == {"cross_entropy", "savage", "bootstrap_soft"}


# ------------------------------------------------------------------------------------ one run: 0.5 points


def test_single_runs_bold_everything_within_half_a_point():
    # the paper's CIFAR-10 ResNet-14, no noise: 87.8 is highest; 87.3 (0.5 below) is bold, 87.2 is not
    marks = best_cells(
        {
            "cross_entropy": [87.8],
            "bootstrap_hard": [87.3],
            "forward_est": [87.4],
            "unhinged_bn": [86.9],
            "savage": [80.1],
            "backward_est": [87.2],
        }
    )
    assert bold(marks) == {"cross_entropy", "bootstrap_hard", "forward_est"}


# ------------------------------------------------------------------------------------ the * rule


def test_true_T_rows_above_the_rest_are_starred_and_the_next_best_bold():
    # the paper's MNIST, asymmetric N = 0.6 (five runs with exactly the paper's means and sds)
    column = {
        "cross_entropy": jitter(53.0, 0.6, seed=1),
        "unhinged_bn": jitter(71.2, 1.0, seed=2),
        "sigmoid_bn": jitter(71.4, 1.3, seed=3),
        "backward": jitter(93.0, 0.9, seed=4),
        "backward_est": jitter(67.4, 1.5, seed=5),
        "forward": jitter(97.3, 0.1, seed=6),
        "forward_est": jitter(64.9, 4.4, seed=7),
    }
    marks = best_cells(column, noise="asymmetric")
    assert starred(marks) == {"forward", "backward"}
    # the next highest is sigmoid (71.4 +- 1.3): unhinged (71.2 +- 1.0) is not far from it, forward T-hat
    # (64.9 +- 4.4, t = 3.17 on 4.7 df) and backward T-hat (67.4 +- 1.5) are
    p_value = {m: 2 * stats.t.sf(abs(welch_t_df(column[m], column["sigmoid_bn"])[0]),
                                 welch_t_df(column[m], column["sigmoid_bn"])[1])
               for m in ("unhinged_bn", "forward_est", "backward_est")}  # fmt: skip
    assert p_value["unhinged_bn"] > 0.05 > max(p_value["forward_est"], p_value["backward_est"])
    assert bold(marks) == {"forward", "backward", "sigmoid_bn", "unhinged_bn"}


def test_only_the_true_T_rows_above_every_other_row_are_starred():
    # the paper's IMDB LSTM, asymmetric N = 0.4: forward 84.7* but backward 83.6 < forward T-hat 84.2
    column = {"forward": [84.7] * 5, "backward": [83.6] * 5, "forward_est": [84.2] * 5, "savage": [70.4] * 5}
    marks = best_cells(column, noise="asymmetric")
    assert starred(marks) == {"forward"}
    assert bold(marks) == {"forward", "forward_est"}


def test_a_tie_with_the_true_T_at_the_printed_precision_gives_no_star():
    # the paper's MNIST, asymmetric N = 0.2: forward and forward T-hat both 97.7, no star
    column = {
        "forward": jitter(97.71, 0.05, seed=1),
        "forward_est": jitter(97.68, 0.05, seed=2),
        "cross_entropy": jitter(97.5, 0.01, seed=3),
    }
    marks = best_cells(column, noise="asymmetric")
    assert starred(marks) == set()
    assert bold(marks) == {"forward", "forward_est"}


def test_no_star_without_injected_noise():
    # with T = I the "true T" rows carry no extra knowledge: 92.5 over 92.4 is an ordinary win
    column = {
        "forward": jitter(92.5, 0.3, seed=1),
        "backward": jitter(92.5, 0.3, seed=2),
        "cross_entropy": jitter(92.4, 0.3, seed=3),
        "savage": jitter(91.0, 0.1, seed=4),
    }
    marks = best_cells(column, noise="none")
    assert starred(marks) == set()
    assert bold(marks) == {"forward", "backward", "cross_entropy"}
    assert starred(best_cells(column, noise="symmetric")) == {"forward", "backward"}


# ------------------------------------------------------------------------------------ the † rule


def test_dagger_only_without_injected_noise():
    column = {"forward": [86.7] * 3, "forward_est": [87.0] * 3, "backward": [86.7] * 3, "backward_est": [86.6] * 3}
    marks = best_cells(column, noise="none")
    assert daggered(marks) == {"forward_est"}
    assert not any("dagger" in mark for mark in best_cells(column, noise="symmetric").values())


# ------------------------------------------------------------------------------------ from the catalogue


@pytest.fixture
def plugged_corrections():
    """A true-T correction and its estimated-T version, registered as a plug-in would."""
    pyrobust.register_method("my_forward", "torch.nn:CrossEntropyLoss", label="my forward", transition="true")
    pyrobust.register_method("my_forward_est", "torch.nn:CrossEntropyLoss", label="my forward T̂",
                             transition="estimated", counterpart="my_forward")  # fmt: skip
    yield
    registry.METHODS.unregister("my_forward")
    registry.METHODS.unregister("my_forward_est")


def test_registered_corrections_take_part_in_the_star_and_dagger_rules(plugged_corrections):
    column = {"my_forward": [95.0] * 3, "cross_entropy": [80.0] * 3, "my_forward_est": [81.0] * 3}
    assert starred(best_cells(column, noise="asymmetric")) == {"my_forward"}
    column = {"my_forward": [86.7] * 3, "my_forward_est": [87.0] * 3, "cross_entropy": [60.0] * 3}
    assert daggered(best_cells(column, noise="none")) == {"my_forward_est"}


def test_unknown_methods_compete_as_ordinary_rows():
    marks = best_cells({"not_registered": [95.0] * 3, "cross_entropy": [80.0] * 3}, noise="asymmetric")
    assert marks == {"not_registered": {"bold"}, "cross_entropy": set()}
