"""pyrobust.losses.baselines: each loss against values computed by hand (plain Python math, the formulas of
the papers / the authors' Keras benchmark), reductions like F.cross_entropy, gradcheck, bad inputs."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from pyrobust import losses
from pyrobust._checks import DtypeError
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
def test_bad_inputs_raise_what_every_loss_raises(name):
    """The checks of pyrobust._checks (their sweep against F.cross_entropy: tests/kernels/test_checks.py)."""
    loss = getattr(baselines, name)
    logits = torch.zeros(2, 3)
    with pytest.raises(IndexError, match=r"^target\[1\] = 3 is out of range for 3 classes \(ignore_index = -100\)$"):
        loss(logits, torch.tensor([0, 3]))
    with pytest.raises(IndexError, match=r"target\[0\] = -1 is out of range"):
        loss(logits, torch.tensor([-1, 0]))
    with pytest.raises(DtypeError, match=r"^target must hold int64 \(or uint8\) class indices, got torch.float32: "
                                         r"pass target.long\(\)"):
        loss(logits, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"^target must have shape \(2,\) to match logits \(2, 3\), got \(3,\)"):
        loss(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^logits must be 2-D \(B, C\), got shape \(3,\)$"):
        loss(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(DtypeError, match="^logits must be floating point, got torch.int64$"):
        loss(logits.long(), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^reduction must be one of \('none', 'mean', 'sum'\), got 'avg'$"):
        loss(logits, torch.tensor([0, 1]), "avg")


def test_bad_hyperparameters():
    h, y = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"beta must be in \(0, 1\]"):
        baselines.bootstrap_soft(h, y, beta=1.5)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        baselines.gce(h, y, q=0.0)
    with pytest.raises(ValueError, match="A stands for log 0 and must be negative"):
        baselines.sce(h, y, A=0.0)


# --- modules --------------------------------------------------------------------------------------------

#: each module class of pyrobust.losses and the function it wraps
CLASSES = {
    "UnhingedLoss": "unhinged",
    "SigmoidLoss": "sigmoid",
    "SavageLoss": "savage",
    "BootstrapSoftLoss": "bootstrap_soft",
    "BootstrapHardLoss": "bootstrap_hard",
    "GCELoss": "gce",
    "SCELoss": "sce",
}


def test_every_baseline_has_a_module():
    assert sorted(CLASSES.values()) == sorted(NAMES)


@pytest.mark.parametrize("cls", list(CLASSES))
def test_module_defaults_are_the_functions(cls):
    """Same hyperparameters, same defaults, ``reduction`` first, as nn.CrossEntropyLoss."""
    function = getattr(baselines, CLASSES[cls])
    module = inspect.signature(getattr(losses, cls)).parameters
    wanted = inspect.signature(function).parameters
    assert list(module) == list(wanted)[2:]
    for name, parameter in module.items():
        assert parameter.default == wanted[name].default, name


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("cls", list(CLASSES))
def test_module_equals_its_function_bit_for_bit(cls, reduction):
    function = getattr(baselines, CLASSES[cls])
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        logits = (3 * torch.randn(64, 10, generator=g)).to(dtype)
        target = torch.randint(0, 10, (64,), generator=g)
        target[::5] = -100
        module = getattr(losses, cls)(reduction)
        assert isinstance(module, losses.BaselineLoss) and isinstance(module, torch.nn.Module)
        torch.testing.assert_close(module(logits, target), function(logits, target, reduction), rtol=0, atol=0)
        if cls == "GCELoss":
            assert torch.equal(losses.GCELoss()(logits, target), baselines.gce(logits, target, "mean"))


@pytest.mark.parametrize(
    "module, function, kwargs",
    [
        (losses.UnhingedLoss, baselines.unhinged, dict(signed=True, ignore_index=3)),
        (losses.SigmoidLoss, baselines.sigmoid, dict(signed=True)),
        (losses.SavageLoss, baselines.savage, dict(signed=True)),
        (losses.BootstrapSoftLoss, baselines.bootstrap_soft, dict(beta=0.5)),
        (losses.BootstrapHardLoss, baselines.bootstrap_hard, dict(beta=0.3)),
        (losses.GCELoss, baselines.gce, dict(q=0.2, ignore_index=1)),
        (losses.SCELoss, baselines.sce, dict(alpha=0.5, beta=0.25, A=-2.0)),
    ],
)
def test_module_hyperparameters_reach_the_function(module, function, kwargs):
    logits, target = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET)
    got = module("none", **kwargs)(logits, target)
    torch.testing.assert_close(got, function(logits, target, "none", **kwargs), rtol=0, atol=0)
    assert not torch.equal(got, function(logits, target, "none"))  # the setting made a difference


def test_baseline_loss_wraps_any_function_and_says_so():
    logits, target = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET)
    loss = losses.BaselineLoss(baselines.gce, reduction="sum", q=0.5)
    torch.testing.assert_close(loss(logits, target), baselines.gce(logits, target, "sum", q=0.5), rtol=0, atol=0)
    assert repr(loss) == "BaselineLoss(gce, reduction='sum', q=0.5)"
    assert repr(losses.GCELoss()) == "GCELoss(reduction='mean', q=0.7, ignore_index=-100)"
    assert list(loss.parameters()) == [] and loss.state_dict() == {}


def test_modules_check_their_settings_at_construction():
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        losses.UnhingedLoss("avg")
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        losses.BaselineLoss(baselines.gce, "avg")
    with pytest.raises(ValueError, match=r"beta must be in \(0, 1\]"):
        losses.BootstrapSoftLoss(beta=1.5)
    with pytest.raises(ValueError, match=r"beta must be in \(0, 1\]"):
        losses.BootstrapHardLoss(beta=0.0)
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        losses.GCELoss(q=2.0)
    with pytest.raises(ValueError, match="A stands for log 0 and must be negative"):
        losses.SCELoss(A=1.0)
    with pytest.raises(ValueError, match="alpha and beta must be >= 0"):
        losses.SCELoss(alpha=-1.0)
    with pytest.raises(TypeError):
        losses.GCELoss("mean", 0.5)  # hyperparameters are keyword-only, as in the functions
