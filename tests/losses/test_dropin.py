"""The corrected losses as drop-ins for F.cross_entropy / nn.CrossEntropyLoss (issue 12).

With T = I both corrections are the cross-entropy: every feature of F.cross_entropy (weight,
label_smoothing, class-probability targets, K-dimensional and unbatched inputs, uint8 targets,
ignore_index, reductions, dtypes) is compared with it, for the functions and the modules. With T != I they
are compared with the formulas of pyrobust.losses.corrected's docstring, written here in float64 from
softmax(h) @ T and T^-1 directly (no log-space tricks, no kernels).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust._checks import DtypeError

C = 6
I = torch.eye(C, dtype=torch.float64)


def noisy_T(C: int = C, seed: int = 0, zeros: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C / 3 * torch.eye(C, dtype=torch.float64)
    if zeros:
        T[0, 1] = T[2, 4] = T[5, 0] = 0.0
    return T / T.sum(dim=1, keepdim=True)


def weights(seed: int = 1) -> torch.Tensor:
    return torch.rand(C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.25


def function(kind, T):
    fn = pyrobust.forward_corrected_cross_entropy if kind == "forward" else pyrobust.backward_corrected_cross_entropy
    return lambda h, y, **kw: fn(h, y, T, **kw)


def module(kind, T):
    cls = pyrobust.ForwardCorrectedLoss if kind == "forward" else pyrobust.BackwardCorrectedLoss

    def call(h, y, reduction="mean", weight=None, **kw):
        return cls(T, reduction=reduction, weight=weight, **kw)(h, y)

    return call


MAKERS = {"function": function, "module": module}


def value_and_grad(fn, logits):
    h = logits.detach().clone().requires_grad_()
    value = fn(h)
    (grad,) = torch.autograd.grad(value.sum(), h)
    return value.detach(), grad


def batch(*shape, seed=0, ignore=True, dtype=torch.float32):
    """Logits (N, C, *shape) and class indices (N, *shape), some ignored (-100)."""
    g = torch.Generator().manual_seed(seed)
    N, rest = 9, tuple(shape)
    logits = (3 * torch.randn(N, C, *rest, generator=g, dtype=torch.float64)).to(dtype)
    target = torch.randint(0, C, (N, *rest), generator=g)
    if ignore:
        target.view(-1)[::5] = -100
    return logits, target


def probabilities(like: torch.Tensor, seed=2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(like.shape, generator=g, dtype=torch.float64)
    p[p < 0.3] = 0.0  # zeros, where a masked class's 0 * log 0 is 0
    return (p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)).to(like.dtype)


# --- T = I: F.cross_entropy itself ------------------------------------------------------------------

FEATURES = {
    "plain": lambda: (*batch(), {}),
    "weight": lambda: (*batch(), dict(weight=weights().float())),
    "label_smoothing": lambda: (*batch(), dict(label_smoothing=0.2)),
    "weight+label_smoothing": lambda: (*batch(), dict(weight=weights().float(), label_smoothing=0.3)),
    "probabilities": lambda: ((b := batch(ignore=False)[0]), probabilities(b), {}),
    "probabilities+weight+smoothing": lambda: ((b := batch(ignore=False)[0]), probabilities(b),
                                               dict(weight=weights().float(), label_smoothing=0.1)),
    "K-dim (N, C, 3, 2)": lambda: (*batch(3, 2), dict(weight=weights().float())),
    "K-dim probabilities": lambda: ((b := batch(4, ignore=False)[0]), probabilities(b), {}),
    "unbatched": lambda: (batch(ignore=False)[0][0], torch.tensor(3), {}),
    "unbatched probabilities": lambda: ((b := batch(ignore=False)[0][0]), probabilities(b[None])[0], {}),
    "uint8 targets": lambda: ((b := batch(ignore=False))[0], b[1].to(torch.uint8), {}),
    "uint8 + ignore_index 255": lambda: (batch()[0], torch.tensor([0, 255, 2, 3, 4, 5, 255, 1, 2], dtype=torch.uint8),
                                         dict(ignore_index=255)),
    "ignore_index 2": lambda: (*batch(ignore=False), dict(ignore_index=2)),
    "float64": lambda: (*batch(dtype=torch.float64), dict(weight=weights())),
}


@pytest.mark.parametrize("maker", list(MAKERS))
@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("feature", list(FEATURES))
def test_identity_T_is_cross_entropy_for_every_feature(maker, kind, reduction, feature):
    logits, target, kw = FEATURES[feature]()
    kw = dict(kw, reduction=reduction)
    expected, expected_grad = value_and_grad(lambda h: F.cross_entropy(h, target, **kw), logits)
    value, grad = value_and_grad(lambda h: MAKERS[maker](kind, I)(h, target, **kw), logits)
    assert value.shape == expected.shape and value.dtype == expected.dtype
    tol = dict(rtol=1e-10, atol=1e-10) if logits.dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(value, expected, **tol)
    torch.testing.assert_close(grad, expected_grad, **tol)


@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loss_has_the_logits_dtype_outside_autocast_and_float32_inside(kind, dtype):
    logits, target = batch()
    h = logits.to(dtype)
    expected = F.cross_entropy(h, target)
    value = function(kind, I)(h, target)
    assert value.dtype == expected.dtype == dtype
    torch.testing.assert_close(value.float(), expected.float(), rtol=1e-2, atol=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert function(kind, I)(h, target).dtype == F.cross_entropy(h, target).dtype == torch.float32
    p = probabilities(logits).double()  # class probabilities promote, as F.cross_entropy's
    assert function(kind, I)(logits, p).dtype == F.cross_entropy(logits, p).dtype == torch.float64


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_a_float_target_of_class_indices_says_long(kind):
    logits, target = batch(ignore=False)
    with pytest.raises(DtypeError, match=r"pass target\.long\(\)"):
        function(kind, I)(logits, target.float())
    with pytest.raises(RuntimeError, match="Long or Byte"):  # what F.cross_entropy says
        F.cross_entropy(logits, target.float())
    with pytest.raises(ValueError, match="ignore_index is not supported for class-probability"):
        function(kind, I)(logits, probabilities(logits), ignore_index=1)


# --- T != I: the float64 formulas ---------------------------------------------------------------------


def formula(kind, logits, target, T, *, weight=None, label_smoothing=0.0, reduction="mean", soft=False):
    """The losses of the module docstring, in float64, for rows (B, C): class indices (B,) or probabilities
    (B, C). Forward: -sum_k w_k s_k log (softmax(h) @ T)_k; backward: sum_j (s @ T^-1)_j w_j (-log p_j);
    a mean divides by sum_i w[y_i] over rows not ignored (class indices) or by B (probabilities)."""
    h = logits.double()
    w = torch.ones(C, dtype=torch.float64) if weight is None else weight.double()
    if soft:
        s, valid = target.double(), torch.ones(h.shape[0], dtype=torch.bool)
    else:
        valid = target != -100
        s = F.one_hot(torch.where(valid, target, 0), C).double() * valid[:, None]
    s = (1 - label_smoothing) * s + label_smoothing / C * valid[:, None].double()
    if kind == "forward":
        q = F.softmax(h, dim=1) @ T
        loss = -(w * s * torch.where(s > 0, q, 1).log()).sum(dim=1)
    else:
        loss = ((s @ torch.linalg.inv(T)) * w * -F.log_softmax(h, dim=1)).sum(dim=1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if soft:
        return loss.mean()
    return loss.sum() / w[torch.where(valid, target, 0)][valid].sum()


CASES = {
    "weight": dict(weight=weights()),
    "label_smoothing": dict(label_smoothing=0.25),
    "weight+label_smoothing": dict(weight=weights(), label_smoothing=0.1),
    "probabilities": dict(soft=True),
    "probabilities+weight": dict(soft=True, weight=weights()),
    "K-dim": dict(kdim=True, weight=weights()),
}


@pytest.mark.parametrize("maker", list(MAKERS))
@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noisy_T_matches_the_float64_formula(maker, kind, reduction, case, dtype):
    T = noisy_T()
    opts = dict(CASES[case])
    soft, kdim = opts.pop("soft", False), opts.pop("kdim", False)
    logits, target = batch(2, dtype=dtype) if kdim else batch(dtype=dtype, ignore=not soft)
    if soft:
        target = probabilities(logits)
    # rows: (N, C, 2) -> (2N, C) in F.cross_entropy's order
    rows = logits.movedim(1, -1).reshape(-1, C) if kdim else logits
    row_target = target.reshape(-1) if kdim else target

    def expected_fn(h):
        hr = h.movedim(1, -1).reshape(-1, C) if kdim else h
        out = formula(kind, hr, row_target, T, reduction=reduction, soft=soft, **opts)
        return out.reshape(logits.shape[:1] + logits.shape[2:]) if reduction == "none" else out

    expected, expected_grad = value_and_grad(expected_fn, logits.double())
    weight = opts.pop("weight", None)
    kw = dict(opts, reduction=reduction, weight=None if weight is None else weight.to(dtype))
    value, grad = value_and_grad(lambda h: MAKERS[maker](kind, T)(h, target, **kw), logits)
    assert value.dtype == dtype and value.shape == expected.shape
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(value.double(), expected, **tol)
    torch.testing.assert_close(grad.double(), expected_grad, **tol)
    del rows


def test_backward_correction_with_weights_is_unbiased_for_the_weighted_clean_loss():
    """The derivation of the weights: E_{y~ ~ T[y]} loss(h, y~) = w_y CE(h, y), each term weighed by its class."""
    T, w = noisy_T(zeros=False), weights()
    logits, _ = batch(ignore=False, dtype=torch.float64)
    clean = torch.arange(9) % C
    per_label = torch.stack([pyrobust.backward_corrected_cross_entropy(logits, torch.full((9,), j), T, weight=w,
                                                                       reduction="none") for j in range(C)], dim=1)
    expectation = (T[clean] * per_label).sum(dim=1)
    torch.testing.assert_close(expectation, w[clean] * F.cross_entropy(logits, clean, reduction="none"))


def test_forward_correction_of_probabilities_is_exact_in_log_space():
    """Logits of +-120 and zeros of T: q_k = (T^T p)_k far below float64's smallest normal number, as the
    O(C) kernel of class indices computes it."""
    T = noisy_T()
    logits = torch.full((4, C), -120.0)
    logits[:, 0] = 120.0
    target = torch.tensor([1, 2, 3, 4])
    onehot = F.one_hot(target, C).float()
    by_index = pyrobust.forward_corrected_cross_entropy(logits, target, T, reduction="none")
    by_probability = pyrobust.forward_corrected_cross_entropy(logits, onehot, T, reduction="none")
    assert torch.isfinite(by_index).all() and (by_index > 200).any()
    torch.testing.assert_close(by_probability, by_index, rtol=1e-6, atol=1e-4)


# --- torch.compile of the functional form --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_function_compiles_with_fullgraph(kind, backend):
    T, w = noisy_T(zeros=kind == "forward"), weights().float()
    logits, target = batch()
    if kind == "forward":
        def f(h, y, T):
            return pyrobust.forward_corrected_cross_entropy(h, y, T, weight=w)
    else:
        def f(h, y, T):
            return pyrobust.backward_corrected_cross_entropy(h, y, T, identity_mix=0.1, weight=w, label_smoothing=0.1)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend=backend)
    expected, expected_grad = value_and_grad(lambda h: f(h, target, T), logits)
    value, grad = value_and_grad(lambda h: compiled(h, target, T), logits)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)
    # the checks of T run inside the graph: an invalid T still raises (a device-side assertion)
    with pytest.raises(RuntimeError, match="T is not a valid transition matrix"):
        compiled(logits, target, 2 * T)


def test_function_with_T_that_requires_grad_compiles_with_fullgraph():
    T = noisy_T().requires_grad_()
    logits, target = batch()

    def f(h, y, T):
        return pyrobust.forward_corrected_cross_entropy(h, y, T)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    (expected,) = torch.autograd.grad(f(logits, target, T), T)
    (value,) = torch.autograd.grad(compiled(logits, target, T), T)
    torch.testing.assert_close(value, expected)
