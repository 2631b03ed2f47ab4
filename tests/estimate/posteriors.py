"""Planted noisy posteriors p(noisy | x) = p(y | x) T (paper, eq. 11) with a known T: a helper of the
estimator tests, imported as a module like tests/data/datafiles.py."""

from __future__ import annotations

import torch


def planted(T: torch.Tensor, n: int, perfect_fraction: float, seed: int, confidence: float = 1.0):
    """Noisy posteriors p(noisy | x) = p(y | x) T (eq. 11) for n examples, with a share perfect_fraction of
    each class's examples "perfect" (p(y = i | x) >= confidence; = 1 when confidence is 1) and the rest
    random mixtures whose largest clean probability is below 0.6. Returns (probs, clean labels)."""
    g = torch.Generator().manual_seed(seed)
    C = T.shape[0]
    clean = torch.arange(n) % C
    exponentials = -torch.rand(n, C, generator=g, dtype=torch.float64).log()
    mixtures = exponentials / exponentials.sum(dim=1, keepdim=True)  # Dirichlet(1, ..., 1)
    mixtures = 0.4 * mixtures + 0.6 / C  # largest clean probability below 0.6
    is_perfect = torch.rand(n, generator=g) < perfect_fraction
    is_perfect[:C] = True  # at least one per class (clean[:C] = 0 .. C-1)
    onehot = torch.nn.functional.one_hot(clean, C).double()
    conf = confidence + (1 - confidence) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    rest = torch.rand(n, C, generator=g, dtype=torch.float64) * (1 - onehot)
    near_onehot = conf * onehot + (1 - conf) * rest / rest.sum(dim=1, keepdim=True)
    p_clean = torch.where(is_perfect[:, None], near_onehot, mixtures)
    return p_clean @ T, clean
