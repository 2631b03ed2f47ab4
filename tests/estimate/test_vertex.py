"""pyrobust's vertex estimator: the rows of T as the C vertices of the noisy posteriors, matched to classes.

The expectation is the T that generated the posteriors (p(noisy | x) = T^T p(clean | x), eq. 11 of Patrini
et al. 2017), on synthetic clouds where most examples are perfect (the anchor-point assumption) and the rest
are mixtures of two classes.
"""

import itertools
import warnings

import numpy as np
import pytest
import torch

import pyrobust
from pyrobust.estimate import EstimationWarning, estimate_transition_matrix
from pyrobust.estimate.vertex import find_vertices, match_vertices, vertex
from pyrobust.noise import asymmetric

C = 10


def noisy_posteriors(T: np.ndarray, n: int = 4000, perfect: float = 0.7, seed: int = 0) -> np.ndarray:
    """n posteriors p(noisy | x) = T^T p(clean | x): a fraction `perfect` one-hot, the others a random mix of
    their class with another one (weight of the own class uniform in [0.5, 1])."""
    rng = np.random.default_rng(seed)
    C = T.shape[0]
    y = rng.integers(0, C, n)
    clean = np.eye(C)[y]
    mixed = rng.random(n) >= perfect
    other = rng.integers(0, C, n)
    own = rng.uniform(0.5, 1.0, n)
    clean[mixed] = own[mixed, None] * np.eye(C)[y[mixed]] + (1 - own[mixed, None]) * np.eye(C)[other[mixed]]
    return clean @ T


def pair_flips(pairs: dict[int, int], N: float, C: int = C) -> np.ndarray:
    T = np.eye(C)
    for i, j in pairs.items():
        T[i, i], T[i, j] = 1 - N, N
    return T


# MNIST's flips without the 5 <-> 6 swap: 2 -> 7 -> 1 and 3 -> 8, the chain that defeats eq. 12 at N > 0.5
CHAIN = {2: 7, 7: 1, 3: 8}


@pytest.mark.parametrize("N", [0.2, 0.6])
def test_recovers_pair_flips_with_and_without_diagonal_dominance(N):
    T = pair_flips(CHAIN, N)
    P = torch.from_numpy(noisy_posteriors(T))
    T_hat = estimate_transition_matrix(P, method="vertex").numpy()
    np.testing.assert_allclose(T_hat, T, atol=0.02)


def test_beats_the_papers_estimator_where_a_column_argmax_is_another_class():
    T = pair_flips(CHAIN, 0.6)
    P = torch.from_numpy(noisy_posteriors(T, seed=1))
    ours = pyrobust.estimation_error(estimate_transition_matrix(P, method="vertex"), T)["max_row_l1"]
    with pytest.warns(EstimationWarning):  # classes 2 and 3 are never predicted
        papers = pyrobust.estimation_error(estimate_transition_matrix(P, method="argmax"), T)["max_row_l1"]
    # eq. 12's anchor for class 7 is a perfect 2 (T[2, 7] = 0.6 > T[7, 7]): a whole row wrong
    assert ours < 0.1 < 1.0 < papers


def test_recovers_symmetric_noise():
    T = np.full((C, C), 0.3 / (C - 1))
    np.fill_diagonal(T, 0.7)
    P = torch.from_numpy(noisy_posteriors(T, seed=2))
    np.testing.assert_allclose(estimate_transition_matrix(P, method="vertex").numpy(), T, atol=0.02)


def test_does_not_depend_on_the_order_of_the_examples_or_float32():
    T = pair_flips(CHAIN, 0.6)
    P = torch.from_numpy(noisy_posteriors(T, seed=3))
    perm = torch.randperm(len(P), generator=torch.Generator().manual_seed(0))
    a = estimate_transition_matrix(P, method="vertex")
    b = estimate_transition_matrix(P[perm].float(), method="vertex")
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)


def test_a_swapped_pair_is_said_out_loud_and_the_larger_diagonal_kept():
    # 5 <-> 6 at N = 0.6 is classes 5 and 6 renamed with N = 0.4: no estimator can tell the two apart
    T = pair_flips({5: 6, 6: 5}, 0.6)
    P = torch.from_numpy(noisy_posteriors(T, seed=4))
    with pytest.warns(EstimationWarning, match="classes 5 and 6 can trade rows"):
        T_hat = estimate_transition_matrix(P, method="vertex").numpy()
    np.testing.assert_allclose(T_hat[[5, 6]][:, [5, 6]], [[0.6, 0.4], [0.4, 0.6]], atol=0.02)


def test_no_warning_when_the_assignment_is_clear():
    T = pair_flips(CHAIN, 0.2)
    P = torch.from_numpy(noisy_posteriors(T, seed=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EstimationWarning)
        estimate_transition_matrix(P, method="vertex")


def test_a_class_nothing_anchors_is_named():
    T = pair_flips({}, 0.0)
    P = noisy_posteriors(T, seed=6)
    P = P[P.argmax(1) != 4]  # no example of class 4 at all
    with pytest.warns(EstimationWarning, match="class 4"):
        estimate_transition_matrix(torch.from_numpy(P), method="vertex")


def test_match_vertices_is_the_max_log_diagonal_assignment():
    rng = np.random.default_rng(7)
    V = rng.dirichlet(np.ones(5), size=5)
    order = match_vertices(torch.from_numpy(V)).numpy()
    best = max(
        (sum(np.log(V[p[i], i]) for i in range(5)), p) for p in itertools.permutations(range(5))
    )[1]
    np.testing.assert_array_equal(order, best)


def test_find_vertices_returns_distributions_and_supports():
    P = torch.from_numpy(noisy_posteriors(pair_flips(CHAIN, 0.2), n=1000, seed=8))
    vertices, members = find_vertices(P)
    torch.testing.assert_close(vertices.sum(1), torch.ones(C, dtype=torch.float64))
    assert int(members.sum()) == 1000 and (members > 0).all()


def test_fewer_examples_than_classes_is_an_error():
    with pytest.raises(ValueError, match="at least C = 10 examples"):
        vertex(torch.full((3, C), 0.1))


def test_the_default_runs_T_is_the_chain_plus_the_swap():
    # MNIST at N = 0.6: the chain is recovered, the 5 <-> 6 swap is warned about and comes out swapped
    T = asymmetric("mnist", 0.6).numpy()
    np.testing.assert_allclose(T, pair_flips({**CHAIN, 5: 6, 6: 5}, 0.6))
    P = torch.from_numpy(noisy_posteriors(T, seed=9))
    with pytest.warns(EstimationWarning, match="classes 5 and 6"):
        T_hat = estimate_transition_matrix(P, method="vertex").numpy()
    rest = [i for i in range(C) if i not in (5, 6)]
    np.testing.assert_allclose(T_hat[rest], T[rest], atol=0.02)


def test_a_diffuse_cloud_between_the_vertices_does_not_make_a_vertex():
    # 60% of the examples are anywhere in the simplex (an unsure network): they would collect a cluster of
    # their own in the middle, which the core refinement leaves out
    rng = np.random.default_rng(10)
    T = pair_flips(CHAIN, 0.2)
    n = 6000
    clean = np.eye(C)[rng.integers(0, C, n)]
    diffuse = rng.random(n) < 0.6
    clean[diffuse] = rng.dirichlet(np.ones(C), size=int(diffuse.sum()))
    P = torch.from_numpy(clean @ T)
    T_hat = estimate_transition_matrix(P, method="vertex")
    assert pyrobust.estimation_error(T_hat, T)["max_row_l1"] < 0.15
    vertices, _ = find_vertices(P)
    assert vertices.max(dim=1).values.min() > 0.7  # no centre in the middle of the simplex
