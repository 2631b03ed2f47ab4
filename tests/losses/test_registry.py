"""pyrobust.losses.registry: Table 2's method names -> loss module, BN head, which T."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pyrobust import noise
from pyrobust.losses import METHODS, Method, baselines, get_method

PAPER_CSV = Path(__file__).resolve().parents[2] / "workflow" / "resources" / "table2-paper.csv"


def test_names_are_table2s_plus_gce_and_sce():
    with PAPER_CSV.open() as f:
        paper = {row["method"] for row in csv.DictReader(f)}
    assert set(METHODS) == paper | {"gce", "sce"}
    assert all(isinstance(m, Method) and m.name == name for name, m in METHODS.items())


def test_bn_head_and_transition():
    assert {n for n, m in METHODS.items() if m.bn_head} == {"unhinged_bn", "sigmoid_bn"}
    assert {n: m.transition for n, m in METHODS.items() if m.transition} == {
        "backward": "true",
        "forward": "true",
        "backward_est": "estimated",
        "forward_est": "estimated",
    }


def batch(C: int = 10, B: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, generator=g, dtype=torch.float64), torch.randint(0, C, (B,), generator=g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_without_T(reduction):
    logits, target = batch()
    functions = {
        "cross_entropy": F.cross_entropy,
        "unhinged_bn": baselines.unhinged,
        "sigmoid_bn": baselines.sigmoid,
        "savage": baselines.savage,
        "bootstrap_soft": baselines.bootstrap_soft,
        "bootstrap_hard": baselines.bootstrap_hard,
        "gce": baselines.gce,
        "sce": baselines.sce,
    }
    for name, function in functions.items():
        loss = get_method(name).make_loss(reduction=reduction)
        assert isinstance(loss, torch.nn.Module)
        torch.testing.assert_close(loss(logits, target), function(logits, target, reduction=reduction))


@pytest.mark.parametrize("name", ["forward", "forward_est", "backward", "backward_est"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_corrected_losses_follow_the_paper(name, reduction):
    T = noise.asymmetric("mnist", 0.3)
    logits, target = batch()
    p = logits.softmax(dim=1)
    if name.startswith("forward"):  # eq. 9 (Theorem 2): -log (T^T p(y|x))_y
        want = -torch.log((p @ T)[torch.arange(len(target)), target])
    else:  # eq. 7 (Theorem 1): (T^-1 l)_y with l_j = -log p_j
        want = (torch.linalg.inv(T)[target] * -torch.log(p)).sum(dim=1)
    want = {"mean": want.mean(), "sum": want.sum(), "none": want}[reduction]
    got = get_method(name).make_loss(T, reduction=reduction)(logits, target)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["forward", "forward_est", "backward", "backward_est"])
def test_corrected_methods_need_T(name):
    which = "the true T" if get_method(name).transition == "true" else "the estimate T_hat"
    with pytest.raises(ValueError, match=f"method '{name}' corrects the loss with {which}: pass T"):
        get_method(name).make_loss()


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown method 'mae'; known: cross_entropy, unhinged_bn, sigmoid_bn"
    ):
        get_method("mae")


def test_method_is_immutable():
    with pytest.raises(AttributeError):
        get_method("forward").bn_head = True  # type: ignore[misc]
