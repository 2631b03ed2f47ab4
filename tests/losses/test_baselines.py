"""pyrobust.losses.baselines: each loss against values computed by hand (plain Python math, the formulas of
the papers / the authors' Keras benchmark), reductions like F.cross_entropy, gradcheck, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from pyrobust.losses import baselines

LOGITS = [[2.0, -1.0, 0.5], [0.0, 0.3, -0.7], [-1.2, 1.5, 1.4]]
TARGET = [0, 2, 1]


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def sigma(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def by_hand(name: str, h: list[float], y: int, signed: bool = False) -> float:
    """One example's loss, written from the formula of each docstring's paper."""
    C, p = len(h), softmax(h)
    t = [(1.0 if k == y else (-1.0 if signed else 0.0)) for k in range(C)]
    if name == "unhinged":  # authors' Keras: K.mean(1 - y_true * y_pred)
        return sum(1.0 - t[k] * h[k] for k in range(C)) / C
    if name == "sigmoid":  # K.mean(K.sigmoid(-y_true * y_pred))
        return sum(sigma(-t[k] * h[k]) for k in range(C)) / C
    if name == "savage":  # K.mean(1 / (1 + exp(2 y_true p))^2) on the softmax output
        return sum(1.0 / (1.0 + math.exp(2.0 * t[k] * p[k])) ** 2 for k in range(C)) / C
    if name == "bootstrap_soft":  # -sum((beta y + (1 - beta) p) log p), beta = 0.95
        return -sum((0.95 * (k == y) + 0.05 * p[k]) * math.log(p[k]) for k in range(C))
    if name == "bootstrap_hard":  # -sum((beta y + (1 - beta) onehot(argmax p)) log p), beta = 0.8
        k_star = max(range(C), key=lambda k: p[k])
        return -sum((0.8 * (k == y) + 0.2 * (k == k_star)) * math.log(p[k]) for k in range(C))
    if name == "gce":  # (1 - p_y^q) / q, q = 0.7
        return (1.0 - p[y] ** 0.7) / 0.7
    if name == "sce":  # alpha CE + beta RCE, RCE = -sum_k p_k log(onehot_k) with log 0 = A = -4
        rce = -sum(p[k] * (0.0 if k == y else -4.0) for k in range(C))
        return 0.1 * -math.log(p[y]) + 1.0 * rce
    raise AssertionError(name)


NAMES = ["unhinged", "sigmoid", "savage", "bootstrap_soft", "bootstrap_hard", "gce", "sce"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_hand_computed_values(name, dtype):
    loss = getattr(baselines, name)
    logits, target = torch.tensor(LOGITS, dtype=dtype), torch.tensor(TARGET)
    want = torch.tensor([by_hand(name, h, y) for h, y in zip(LOGITS, TARGET)], dtype=torch.float64)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    per_example = loss(logits, target, reduction="none")
    assert per_example.dtype == dtype and per_example.shape == (3,)
    torch.testing.assert_close(per_example.double(), want, **tol)
    torch.testing.assert_close(loss(logits, target).double(), want.mean(), **tol)
    torch.testing.assert_close(loss(logits, target, "sum").double(), want.sum(), **tol)


@pytest.mark.parametrize("name", ["unhinged", "sigmoid", "savage"])
def test_signed_targets(name):
    loss = getattr(baselines, name)
    want = torch.tensor(
        [by_hand(name, h, y, signed=True) for h, y in zip(LOGITS, TARGET)], dtype=torch.float64
    )
    got = loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET), "none", signed=True)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_closed_forms_of_the_one_hot_margin_losses():
    # mean_k phi(e^y_k s_k) = (phi(s_y) + (C - 1) phi(0)) / C
    h = torch.tensor(LOGITS, dtype=torch.float64)
    y = torch.tensor(TARGET)
    h_y = h.gather(1, y[:, None]).squeeze(1)
    p_y = h.softmax(dim=1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(baselines.unhinged(h, y, "none"), 1 - h_y / 3)
    torch.testing.assert_close(baselines.sigmoid(h, y, "none"), (torch.sigmoid(-h_y) + 2 * 0.5) / 3)
    torch.testing.assert_close(
        baselines.savage(h, y, "none"), ((1 + torch.exp(2 * p_y)) ** -2 + 2 * 0.25) / 3
    )


def test_hyperparameters_reach_the_formula():
    h, y = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET)
    ce = torch.nn.functional.cross_entropy(h, y, reduction="none")
    torch.testing.assert_close(baselines.bootstrap_soft(h, y, "none", beta=1.0), ce)
    torch.testing.assert_close(baselines.bootstrap_hard(h, y, "none", beta=1.0), ce)
    torch.testing.assert_close(baselines.sce(h, y, "none", alpha=1.0, beta=0.0), ce)
    torch.testing.assert_close(baselines.gce(h, y, "none", q=1.0), 1 - torch.exp(-ce))  # MAE form
    torch.testing.assert_close(baselines.gce(h, y, "none", q=1e-6), ce, rtol=1e-5, atol=1e-5)  # CE limit


@pytest.mark.parametrize("name", NAMES)
def test_ignore_index_like_cross_entropy(name):
    loss = getattr(baselines, name)
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    target = torch.tensor([0, -100, 1])
    per_example = loss(logits, target, "none")
    assert per_example[1] == 0
    kept = loss(logits[[0, 2]], torch.tensor([0, 1]), "none")
    torch.testing.assert_close(per_example[[0, 2]], kept)
    torch.testing.assert_close(loss(logits, target), kept.mean())  # mean over the kept examples only
    torch.testing.assert_close(loss(logits, torch.tensor([0, 7, 1]), ignore_index=7), kept.mean())


@pytest.mark.parametrize(
    "name, kwargs",
    [(name, {}) for name in NAMES] + [(n, {"signed": True}) for n in ("unhinged", "sigmoid", "savage")],
)
def test_gradcheck(name, kwargs):
    loss = getattr(baselines, name)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, 1, 1, 2])
    # hard bootstrapping's argmax is piecewise constant: keep its class away from ties for finite differences
    assert torch.topk(logits.detach(), 2).values.diff(dim=1).abs().min() > 1e-3
    for reduction in ("mean", "sum", "none"):
        assert torch.autograd.gradcheck(lambda h: loss(h, target, reduction, **kwargs), (logits,))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clearly(name):
    loss = getattr(baselines, name)
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"target holds class 3 outside \[0, 3\)"):
        loss(logits, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"target must be an int64 tensor of shape \(2,\)"):
        loss(logits, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"target must be an int64 tensor of shape \(2,\)"):
        loss(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits must be a floating point B x C tensor"):
        loss(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="unknown reduction 'avg'; known: mean, sum, none"):
        loss(logits, torch.tensor([0, 1]), "avg")


def test_bad_hyperparameters():
    h, y = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"beta must be in \(0, 1\]"):
        baselines.bootstrap_soft(h, y, beta=1.5)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        baselines.gce(h, y, q=0.0)
    with pytest.raises(ValueError, match="A stands for log 0 and must be negative"):
        baselines.sce(h, y, A=0.0)
