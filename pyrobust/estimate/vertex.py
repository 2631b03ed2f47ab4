"""pyrobust's estimator of ``T``: the C vertices of the noisy posteriors, then a matching of vertices to classes.

Why the paper's estimator fails at ``N > 0.5``: eq. 12 takes ``x^i = argmax_x p(noisy = i | x)``, which is
a perfect example of class ``i`` only if ``T[i, i]`` is the largest entry of column ``i``. Under the
paper's model, ``p(noisy | x) = T^T p(clean | x)``: the noisy posteriors fill the simplex spanned by the C
rows of ``T``, and a perfect example of class ``i`` sits on the vertex ``T[i, :]``. So the rows of ``T``
are found as the C vertices of the point cloud, without reference to columns, and only then given to
classes: class ``i`` gets the vertex of the maximum-weight matching of ``log T_hat[i, i]`` (Hungarian
algorithm), which recovers ``T`` whenever the true assignment is the one of largest ``prod_i T[i, i]``,
a much weaker condition than diagonal dominance.

1. Seeds: successive projection (Araújo et al., 2001; Gillis & Vavasis, IEEE TPAMI 2014) picks C points
   far from the span of those already picked; each seed is the mean of its ``k`` nearest neighbours, so
   one over-confident outlier cannot be a vertex.
2. Refinement: Lloyd iterations with exactly C clusters and the coordinate-wise *median* as the centre.
   A cluster mean is pulled inwards by the examples between two vertices (ambiguous images, or true
   classes seen through noise); the median is not. More clusters than classes is a trap: a class's
   examples split into sub-clusters and the matching gives another class one of them, so the count is C.
   Where a centre still ends inside the simplex (an unsure network's diffuse cloud collects a cluster of
   its own), the refinement is redone on the examples near a seed only.
3. Matching: ``scipy.optimize.linear_sum_assignment`` on ``-log T_hat[i, i]``.

What no estimator can know: a pair of classes whose rows may trade places. With pair flips ``5 <-> 6`` at
``N = 0.6``, ``T[5] = (0.4, 0.6)`` and ``T[6] = (0.6, 0.4)`` on (5, 6): the noisy data are exactly those of
classes 5 and 6 renamed with ``N = 0.4``, so both matrices fit every ``p(noisy | x)`` equally. The
matching takes the larger diagonal; :func:`vertex` warns (:class:`EstimationWarning`) naming such pairs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from pyrobust.estimate.failures import EstimationWarning

__all__ = ["find_vertices", "match_vertices", "vertex"]

#: Two classes are reported as able to trade rows when the swapped diagonal's product is at least this
#: fraction of the chosen one's (0.25: e.g. 0.4 * 0.4 against 0.6 * 0.6 warns, 0.3 * 0.3 against 0.7 * 0.7
#: does not) and each swapped entry is above chance, 1 / C.
SWAP_RATIO = 0.25
#: Near a vertex: within this fraction of the vertex's distance to the centroid (see :func:`find_vertices`).
CORE = 0.5
#: Lloyd iterations stop when at most this fraction of the examples changes cluster.
SETTLED = 1e-3
#: Lloyd iterations at most (MNIST-5k settles in under 20; CIFAR-100's 100 clusters within this many).
MAX_ITERATIONS = 30


def vertex(
    probs: torch.Tensor, *, row_normalize: bool = True, **options: Any
) -> torch.Tensor:
    """``T_hat`` from the C vertices of the noisy posteriors, matched to classes by the Hungarian algorithm.

    See the module's docstring for the method: :func:`find_vertices` (successive projection seeds, median
    Lloyd refinement) then :func:`match_vertices`. O(n C^2 + n C log n) per Lloyd iteration (at most
    :data:`MAX_ITERATIONS`, twice), no Python loop over examples or clusters, CPU or CUDA: MNIST-5k
    (n = 4,000, C = 10) in about 0.1 s, C = 100 and n = 20,000 in about 17 s on one CPU core.

    Args:
        probs: ``n x C`` floating tensor of softmax outputs ``p(noisy | x)`` (validated by
            :func:`pyrobust.estimate_transition_matrix`), ``n >= C``.
        row_normalize: the vertices are always row-normalised (a median is not a distribution); kept for
            the estimator interface.
        options: ignored (``labels``, ``quantile``, ``filter_outliers``).

    Returns:
        ``T_hat``, a float64 ``C x C`` row-stochastic tensor on ``probs``' device.

    Raises:
        ValueError: fewer examples than classes.

    Warns:
        EstimationWarning: a class's vertex is supported by under a tenth of its share of the examples;
            a class gets no more than chance mass ``1 / C`` on its own diagonal; two classes can trade
            rows (see the module's docstring).
    """
    P = probs.to(torch.float64)
    n, C = P.shape
    if n < C:
        raise ValueError(f"the vertex estimator needs at least C = {C} examples, got {n}")
    vertices, members = find_vertices(P)
    order = match_vertices(vertices)
    T_hat = vertices[order]
    _warn_failures(T_hat, members[order], n)
    return T_hat


def find_vertices(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The C vertices of the rows of ``P`` (``n x C``, float64): successive-projection seeds refined by Lloyd
    iterations with the coordinate-wise median.

    The refinement runs on every example, unless that pulls a centre into the interior of the simplex
    (closer to the seeds' centroid than :data:`CORE` times the seeds' mean distance to it): a network
    unsure of many examples leaves a diffuse cloud between the vertices, which collects a cluster of its
    own. Then it runs again on the *core*, the examples within that fraction of their nearest seed's
    distance to the centroid, so that only examples near a vertex place it.

    Returns:
        ``(vertices, members)``: ``C x C`` float64, each row a distribution (median, then divided by its
        sum), in no particular order; and the number of examples nearest to each vertex (int64, ``C``).
    """
    n, C = P.shape
    k = max(1, min(math.ceil(0.01 * n), n // (4 * C)))
    seeds = _projection_seeds(P, C, k)
    middle = seeds.mean(0)
    reach = CORE * (seeds - middle).norm(dim=1)  # per seed: how near to it an example is "near a vertex"
    centres, assignment = _median_lloyd(P, seeds)
    if ((centres - middle).norm(dim=1) < reach.mean()).any():  # a centre inside: refine on the core only
        nearest, seed = torch.cdist(P, seeds).min(dim=1)
        core = nearest <= reach[seed]
        if core.sum() >= C:
            centres, _ = _median_lloyd(P[core], seeds)
            assignment = torch.cdist(P, centres).argmin(dim=1)
    vertices = centres.clamp(min=0)
    sums = vertices.sum(1, keepdim=True)
    vertices = torch.where(sums > 0, vertices / sums.clamp(min=1e-300), torch.full_like(vertices, 1.0 / C))
    return vertices, torch.bincount(assignment, minlength=C)


def _median_lloyd(P: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations from ``centres`` with the coordinate-wise median: (centres, assignment)."""
    centres = centres.clone()
    assignment = None
    for _ in range(MAX_ITERATIONS):
        # squared distances without the n x C x C difference tensor
        d = (P * P).sum(1, keepdim=True) - 2 * P @ centres.T + (centres * centres).sum(1)
        new = d.argmin(dim=1)
        # converged: (almost) no example changes cluster; a few stragglers never move a median far
        if assignment is not None and (new != assignment).sum() <= SETTLED * len(P):
            break
        assignment = new
        centres = _cluster_medians(P, assignment, centres)
    return centres, assignment


def _cluster_medians(P: torch.Tensor, assignment: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Each cluster's coordinate-wise (lower) median, as ``torch.median`` takes it, by one sort of all of
    ``P`` (entries in [0, 1]) keyed by cluster: no loop over clusters. An empty cluster keeps its centre."""
    C = previous.shape[0]
    counts = torch.bincount(assignment, minlength=C)
    starts = torch.cumsum(counts, 0) - counts
    key = assignment[:, None].to(P.dtype) + 0.5 * P.clamp(0, 1)  # cluster c's values sort within [c, c + 0.5]
    ordered = key.sort(dim=0).values
    rows = (starts + (counts - 1).clamp(min=0) // 2).clamp(max=len(P) - 1)
    medians = 2 * (ordered[rows] - torch.arange(C, dtype=P.dtype, device=P.device)[:, None])
    return torch.where((counts > 0)[:, None], medians, previous)


def _neighbourhood_mean(P: torch.Tensor, i: int, k: int) -> torch.Tensor:
    """The mean of the ``k`` rows of ``P`` nearest to row ``i`` (one over-confident outlier is not a seed)."""
    nearest = ((P - P[i]) ** 2).sum(1).topk(k, largest=False).indices
    return P[nearest].mean(0)


def match_vertices(vertices: torch.Tensor) -> torch.Tensor:
    """The vertex of each class: the assignment maximising ``sum_i log vertices[order[i], i]`` (Hungarian).

    Args:
        vertices: ``C x C`` nonnegative float tensor, one candidate row of ``T`` per row.

    Returns:
        ``order``, int64 ``C`` on ``vertices``' device: class ``i``'s row of ``T_hat`` is
        ``vertices[order[i]]``.
    """
    cost = -np.log(np.clip(vertices.detach().cpu().numpy(), 1e-12, None))
    rows, classes = linear_sum_assignment(cost)
    order = np.empty(len(classes), dtype=np.int64)
    order[classes] = rows
    return torch.from_numpy(order).to(vertices.device)


def _projection_seeds(P: torch.Tensor, C: int, k: int) -> torch.Tensor:
    """C seeds: successive projection's picks, each replaced by the mean of its ``k`` nearest rows of ``P``."""
    residual = P.clone()
    seeds = []
    for _ in range(C):
        i = int((residual * residual).sum(1).argmax())
        seeds.append(_neighbourhood_mean(P, i, k))
        norm = residual[i].norm()
        if norm > 0:  # project every row off the picked direction
            u = residual[i] / norm
            residual = residual - (residual @ u)[:, None] * u
    return torch.stack(seeds)


def _warn_failures(T_hat: torch.Tensor, members: torch.Tensor, n: int) -> None:
    """The failure modes of the vertex estimate, each named by its class (:class:`EstimationWarning`)."""
    C = T_hat.shape[0]
    diag = T_hat.diagonal()
    for i in range(C):
        if members[i] < 0.1 * n / C:
            warnings.warn(
                f"vertex estimator: class {i}'s vertex is supported by {int(members[i])} of {n} examples; "
                "its row of T_hat is unreliable",
                EstimationWarning, stacklevel=3,
            )
        if diag[i] <= 1.0 / C:
            warnings.warn(
                f"vertex estimator: no vertex puts more than chance mass on class {i} "
                f"(T_hat[{i}, {i}] = {diag[i].item():.3f}): is class {i} ever predicted?",
                EstimationWarning, stacklevel=3,
            )
    chosen = diag[:, None] * diag[None, :]
    swapped = T_hat * T_hat.T
    # both classes keep more than chance mass on their own label under the swap, too
    plausible = torch.minimum(T_hat, T_hat.T) > 1.0 / C
    pairs = torch.nonzero(torch.triu((swapped >= SWAP_RATIO * chosen) & plausible, diagonal=1))
    for i, j in pairs.tolist():
        warnings.warn(
            f"vertex estimator: classes {i} and {j} can trade rows: T_hat[{i}, {i}] = {diag[i].item():.2f}, "
            f"T_hat[{j}, {j}] = {diag[j].item():.2f} (chosen) and {T_hat[j, i].item():.2f}, "
            f"{T_hat[i, j].item():.2f} (swapped) fit the noisy posteriors alike; no estimator can tell "
            "them apart without clean labels, and this one keeps the larger diagonal",
            EstimationWarning, stacklevel=3,
        )
