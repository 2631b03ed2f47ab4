"""Non-finite logits, the whole kind, for every loss of pyrobust (issue 12).

A logit of -inf that is not the target's (a masked class) must give what the loss's formula gives in the
limit h_k -> -inf: here the value at h_k = -1e4 and -1e5 (float64, where exp(h_k - max) is 0 already) if
those agree, else +-inf in the direction they move (the backward correction weighs -log p_k by T^-1[y, k],
so its limit is infinite where that is not 0; so is the signed unhinged loss's). The gradient of a finite
limit is the limit of the gradient. A NaN or +inf logit, anywhere, gives NaN, as F.cross_entropy: never a
finite wrong number. Swept: every method of the registry (pyrobust.registry.list_methods(), each
get_method(name).make_loss(T), the inverting ones also with the experiment's identity_mix and clip), and
the function forms, T_inv, a learnable T, label smoothing and class probabilities; in float64 and float32
(whose exps turn NaN into +inf). And every loss that learns T, whose T's logits turn NaN or +inf.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust import _reference
from pyrobust.losses import baselines, identity_mix_for
from pyrobust.registry import get_method, list_methods

C, B = 10, 6
INF, NAN = float("inf"), float("nan")


def mnist_T(N: float) -> torch.Tensor:
    T = torch.eye(C, dtype=torch.float64)
    for clean, noisy in ((2, 7), (3, 8), (5, 6), (6, 5), (7, 1)):
        T[clean, clean] = 1 - N
        T[clean, noisy] = N
    return T


TRANSITIONS = {"I": torch.eye(C, dtype=torch.float64), "mnist_0.3": mnist_T(0.3)}


def registered(T: torch.Tensor) -> dict:
    """name -> loss(logits, target) with reduction "none", for every registered method."""
    losses = {}
    for name in list_methods():
        method = get_method(name)
        if method.transition is None:  # a method that learns T from scratch is built for C classes
            options = {"num_classes": C} if method.learns_T else {}
            losses[name] = method.make_loss(reduction="none", **options)
            continue
        losses[name] = method.make_loss(T, reduction="none")
        if method.inverts_T:  # as the experiment builds it (pyrobust.experiment.run.make_loss)
            losses[f"{name} (identity_mix, clip=1e-7)"] = method.make_loss(
                T, reduction="none", identity_mix=max(identity_mix_for(T), 0.05), clip=1e-7
            )
    return losses


def variants(T: torch.Tensor) -> dict:
    """The function forms and the options the registry does not exercise."""
    T_inv = torch.linalg.inv(T)
    fwd, bwd = pyrobust.forward_corrected_cross_entropy, pyrobust.backward_corrected_cross_entropy
    out = {
        "forward function": lambda h, y: fwd(h, y, T, reduction="none"),
        "forward function, T requires grad": lambda h, y: fwd(h, y, T.clone().requires_grad_(), reduction="none"),
        "forward learnable": pyrobust.ForwardCorrectedLoss(T, reduction="none", learnable=True).double(),
        "forward label_smoothing": lambda h, y: fwd(h, y, T, reduction="none", label_smoothing=0.1),
        "forward probabilities": lambda h, y: fwd(h, F.one_hot(y, C).to(h.dtype), T, reduction="none"),
        "forward weight": lambda h, y: fwd(h, y, T, reduction="none", weight=torch.linspace(0.5, 2, C, dtype=h.dtype)),
        "backward function": lambda h, y: bwd(h, y, T, reduction="none"),
        "backward function, clip": lambda h, y: bwd(h, y, T, reduction="none", clip=1e-7),
        "backward T_inv": lambda h, y: bwd(h, y, T_inv=T_inv, reduction="none"),
        "backward T_inv requires grad": lambda h, y: bwd(h, y, T_inv=T_inv.clone().requires_grad_(), reduction="none"),
        "backward label_smoothing": lambda h, y: bwd(h, y, T, reduction="none", label_smoothing=0.1),
        "backward probabilities": lambda h, y: bwd(h, F.one_hot(y, C).to(h.dtype), T, reduction="none"),
        "backward weight": lambda h, y: bwd(h, y, T, reduction="none", weight=torch.linspace(0.5, 2, C, dtype=h.dtype)),
    }
    for name in ("unhinged", "sigmoid", "savage"):
        fn = getattr(baselines, name)
        out[f"{name} signed"] = (lambda fn: lambda h, y: fn(h, y, "none", signed=True))(fn)
    return out


def all_losses(T_name: str) -> dict:
    T = TRANSITIONS[T_name]
    return {**registered(T), **variants(T)}


def _logits() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(B, C, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 1, 5, 7, 3, 9])
    return logits, target


def _value_and_grad(loss, logits, target):
    h = logits.clone().requires_grad_()
    value = loss(h, target)
    grad = torch.autograd.grad(value.sum(), h, allow_unused=True)[0]
    return value.detach(), grad


CASES = [(T_name, name) for T_name in TRANSITIONS for name in all_losses(T_name)]


@pytest.mark.parametrize(("T_name", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
def test_minus_inf_logit_gives_the_limit_of_the_formula(T_name, name):
    loss = all_losses(T_name)[name]
    logits, target = _logits()
    # rows 0-4: a masked non-target class (the 0, 2, 5th ...); row 5: the target itself masked
    masked = [(0, 4), (1, 0), (2, 6), (3, 1), (4, 8), (5, 9)]
    at = {}
    for value in (-1e4, -1e5, -INF):
        h = logits.clone()
        for i, k in masked:
            h[i, k] = value
        at[value] = _value_and_grad(loss, h, target)
    (v3, _), (v4, g4), (v_inf, g_inf) = at[-1e4], at[-1e5], at[-INF]
    assert not torch.isnan(v_inf).any(), f"{name}: NaN for a masked class: {v_inf}"
    for i in range(B):
        if math.isclose(v3[i], v4[i], rel_tol=1e-9, abs_tol=1e-9):  # a finite limit, reached at -1e4
            torch.testing.assert_close(v_inf[i], v4[i], rtol=1e-9, atol=1e-9, msg=f"{name}, row {i}")
            if g4 is not None:
                torch.testing.assert_close(g_inf[i], g4[i], rtol=1e-9, atol=1e-9, msg=f"{name}, gradient row {i}")
        else:  # an infinite limit, in the direction the loss moves
            assert v_inf[i] == math.copysign(INF, v4[i] - v3[i]), f"{name}, row {i}: {v_inf[i]} ({v3[i]}, {v4[i]})"


@pytest.mark.parametrize(("T_name", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
@pytest.mark.parametrize("bad", [NAN, INF], ids=["nan", "+inf"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32: its exps do not keep NaN
def test_nan_or_plus_inf_logit_gives_nan(T_name, name, bad, dtype):
    loss = all_losses(T_name)[name]
    logits, target = _logits()
    h = logits.to(dtype)
    h[0, 4] = bad  # a non-target class
    h[1, 1] = bad  # the target
    value, _ = _value_and_grad(loss, h, target)
    expected = F.cross_entropy(h, target, reduction="none")
    assert torch.isnan(expected[:2]).all()
    assert torch.isnan(value[:2]).all(), f"{name}: {value[:2]} for a {bad} logit"
    assert not torch.isnan(value[2:]).any()


def test_the_issue_example():
    """Logits (0.5, -0.2, 1.0, -inf), target 0, T = I: 1.1459, the cross-entropy, on every path."""
    h = torch.tensor([[0.5, -0.2, 1.0, -INF]])
    y = torch.tensor([0])
    I = torch.eye(4, dtype=torch.float64)
    expected = F.cross_entropy(h, y)
    assert abs(expected.item() - 1.1459) < 1e-4
    for value in (
        pyrobust.backward_corrected_cross_entropy(h, y, I),
        pyrobust.backward_corrected_cross_entropy(h, y, T_inv=I),
        pyrobust.backward_corrected_cross_entropy(h, y, I.clone().requires_grad_()),  # the reference path
        pyrobust.BackwardCorrectedLoss(I)(h, y),
        pyrobust.forward_corrected_cross_entropy(h, y, I),
        torch.ops.pyrobust.backward_corrected_ce(h, y, I.float()),
    ):
        torch.testing.assert_close(value.float(), expected)


LEARNS_T = [name for name, loss in all_losses("mnist_0.3").items() if hasattr(loss, "T_logits")]


@pytest.mark.parametrize("name", LEARNS_T)
@pytest.mark.parametrize("bad", ["nan", "+inf", "-inf row"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32: its exps do not keep NaN
def test_non_finite_learned_T_gives_nan(name, bad, dtype):
    """Every loss that learns T (T_logits, whose row-softmax is T): a NaN or +inf logit of T, or a row of T's
    logits all -inf, makes that row of T NaN (log_softmax's) and with it every row's loss (q_y sums all of
    T[:, y]), as the reference computes it: NaN, never a finite number."""
    loss = all_losses("mnist_0.3")[name].to(dtype)
    with torch.no_grad():
        if bad == "-inf row":
            loss.T_logits[3] = -INF
        else:
            loss.T_logits[3, 5] = NAN if bad == "nan" else INF
    logits, target = _logits()
    value, grad = _value_and_grad(loss, logits.to(dtype), target)
    log_T_t = torch.log_softmax(loss.T_logits.detach().double().t(), dim=0)
    expected = _reference.forward_corrected_ce(logits, target, log_T_t, -100, None)
    assert torch.isnan(expected).all()
    assert torch.isnan(value).all(), f"{name}: {value} for a {bad} in T_logits"
    assert torch.isnan(grad).all()
