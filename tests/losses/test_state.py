"""T as the state of the corrected-loss modules, and a learnable T (issue 12).

T is a buffer (state_dict()["T"]); what derives from it (log T^T, T^-1) is re-derived when a checkpoint
replaces it, moves with .to(), and shows in repr with every option. A learnable T is the row-softmax of the
parameter T_logits, whose gradient the fused forward op computes in the same pass as the loss: checked with
gradcheck in float64 and against autograd through the reference formula.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust import _reference
from pyrobust.losses.corrected import LOG_ZERO

C = 7


def noisy_T(seed: int = 0, zeros: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C / 3 * torch.eye(C, dtype=torch.float64)
    if zeros:
        T[0, 3] = T[4, 1] = T[6, 2] = 0.0
    return T / T.sum(dim=1, keepdim=True)


def batch(B=40, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, C, generator=g, dtype=torch.float64)).to(dtype)
    target = torch.randint(0, C, (B,), generator=g)
    target[::9] = -100
    return logits, target


def roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


MODULES = {
    "forward": lambda T, **kw: pyrobust.ForwardCorrectedLoss(T, **kw),
    "backward": lambda T, **kw: pyrobust.BackwardCorrectedLoss(T, identity_mix=0.1, clip=1e-7, **kw),
    "backward exact": lambda T, **kw: pyrobust.BackwardCorrectedLoss(T, **kw),
}


# --- T as a buffer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODULES))
def test_state_dict_holds_T_and_a_checkpoint_round_trip_replaces_it(kind):
    T_old, T_new = noisy_T(0), noisy_T(1)
    weight = torch.rand(C) + 0.5
    trained = MODULES[kind](T_new, weight=weight, label_smoothing=0.1)
    state = trained.state_dict()
    assert sorted(state) == ["T", "weight"]  # derived tables are non-persistent buffers
    assert torch.equal(state["T"], T_new) and state["T"].dtype == torch.float64
    loss = MODULES[kind](T_old, weight=torch.ones(C), label_smoothing=0.1)
    logits, target = batch()
    before = loss(logits, target)
    loss.load_state_dict(roundtrip(state))
    assert torch.equal(loss.T, T_new) and torch.equal(loss.weight, weight)
    # the caches were re-derived: bit for bit the module built with the new T
    assert torch.equal(loss(logits, target), trained(logits, target))
    assert not torch.equal(loss(logits, target), before)


@pytest.mark.parametrize("kind", list(MODULES))
def test_an_invalid_checkpoint_T_is_refused_before_it_replaces_the_module_s(kind):
    loss = MODULES[kind](noisy_T(0))
    for bad, match in ((2 * noisy_T(0), "not row-stochastic"), (-noisy_T(0), "negative entry")):
        with pytest.raises(ValueError, match=match):
            loss.load_state_dict({"T": bad})
        assert torch.equal(loss.T, noisy_T(0))
    if kind == "backward exact":  # identity_mix=0.1 would make it invertible
        singular = torch.eye(C, dtype=torch.float64)
        singular[1] = singular[0]
        with pytest.raises(ValueError, match="T is singular"):
            loss.load_state_dict({"T": singular})
        assert torch.equal(loss.T, noisy_T(0))


@pytest.mark.parametrize("kind", list(MODULES))
def test_assigning_T_rederives_the_tables(kind):
    loss = MODULES[kind](noisy_T(0))
    logits, target = batch()
    loss(logits, target)  # caches the tables
    loss.T = noisy_T(1)
    assert torch.equal(loss(logits, target), MODULES[kind](noisy_T(1))(logits, target))


@pytest.mark.parametrize("kind", list(MODULES))
def test_to_moves_and_casts_T_and_what_derives_from_it(kind):
    loss = MODULES[kind](noisy_T(0))
    logits, target = batch(dtype=torch.float64)
    expected = loss(logits, target)
    loss.float()
    assert loss.T.dtype == torch.float32
    assert all(b.dtype == torch.float32 for b in loss.buffers())
    assert not loss._tables  # cast tables dropped with the move
    torch.testing.assert_close(loss(logits, target), expected, rtol=1e-6, atol=1e-6)
    loss.to(torch.float64)
    torch.testing.assert_close(loss(logits, target), expected, rtol=1e-6, atol=1e-6)


def test_repr_shows_every_option():
    assert repr(pyrobust.ForwardCorrectedLoss(noisy_T(), reduction="sum", ignore_index=3, label_smoothing=0.1,
                                              weight=torch.ones(C), learnable=True)) == (
        "ForwardCorrectedLoss(num_classes=7, reduction='sum', ignore_index=3, weight=(7,), label_smoothing=0.1, "
        "learnable=True)"
    )
    assert repr(pyrobust.BackwardCorrectedLoss(noisy_T(), identity_mix=0.25, clip=1e-7)) == (
        "BackwardCorrectedLoss(num_classes=7, reduction='mean', ignore_index=-100, label_smoothing=0.0, "
        "identity_mix=0.25, clip=1e-07)"
    )


def test_module_under_torch_compile_fullgraph_with_every_option():
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(), weight=torch.rand(C) + 0.5)
    logits, target = batch()
    h1, h2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss(h1, target).backward()
    torch._dynamo.reset()
    torch.compile(loss, fullgraph=True, backend="aot_eager")(h2, target).backward()
    torch.testing.assert_close(h2.grad, h1.grad)


# --- a learnable T -------------------------------------------------------------------------------------


def test_learnable_T_is_a_parameter_initialised_at_T_with_its_zeros_exact():
    T = noisy_T()
    loss = pyrobust.ForwardCorrectedLoss(T, learnable=True)
    assert [name for name, _ in loss.named_parameters()] == ["T_logits"]
    assert loss.T_logits.dtype == torch.float32 and loss.T_logits.t().is_contiguous()
    torch.testing.assert_close(loss.T.double(), T, rtol=1e-6, atol=1e-7)
    assert (loss.T[T == 0] == 0).all() and (loss.T_logits[T == 0] == LOG_ZERO).all()
    torch.testing.assert_close(loss.T.sum(dim=1), torch.ones(C))
    assert loss.T.requires_grad  # a regulariser of T (VolMinNet's log det) reaches T_logits
    state = loss.state_dict()
    assert sorted(state) == ["T", "T_logits"] and torch.equal(state["T"], loss.T.detach())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_learnable_T_gradient_matches_autograd_through_the_reference(reduction, weighted, dtype):
    weight = torch.rand(C, dtype=dtype) + 0.5 if weighted else None
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(), reduction=reduction, weight=weight, learnable=True).to(dtype)
    logits, target = batch(dtype=dtype)
    h = logits.clone().requires_grad_()
    value = loss(h, target)
    value.sum().backward()
    theta = loss.T_logits.detach().clone().requires_grad_()
    h_ref = logits.clone().requires_grad_()
    rows = _reference.forward_corrected_ce(h_ref, target, torch.log_softmax(theta, dim=1).t(), -100, weight)
    expected = _reference.reduce(rows, target, reduction, -100, weight)
    expected.sum().backward()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(value, expected.detach(), **tol)
    torch.testing.assert_close(h.grad, h_ref.grad, **tol)
    torch.testing.assert_close(loss.T_logits.grad, theta.grad, **tol)
    assert loss.T_logits.grad.stride() == loss.T_logits.stride()  # autograd takes it over, no copy


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_learnable_T_in_float64(reduction):
    """The module's own op (forward_corrected_ce_learnable on T_logits transposed), with theta as an input so
    that gradcheck can perturb it."""
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(zeros=False), reduction=reduction, learnable=True).double()
    logits, target = batch(B=12, dtype=torch.float64)
    code = {"mean": 1, "none": 0}[reduction]
    assert torch.autograd.gradcheck(
        lambda h, theta_t: torch.ops.pyrobust.forward_corrected_ce_learnable(h, target, theta_t, -100, code),
        (logits.clone().requires_grad_(), loss.T_logits.detach().t().clone().requires_grad_()))


def test_function_with_a_T_that_requires_grad_gives_the_module_s_gradient():
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(), learnable=True).double()
    logits, target = batch(dtype=torch.float64)
    loss(logits, target).backward()
    theta = loss.T_logits.detach().clone().requires_grad_()
    pyrobust.forward_corrected_cross_entropy(logits, target, torch.softmax(theta, dim=1)).backward()
    torch.testing.assert_close(theta.grad, loss.T_logits.grad, rtol=1e-10, atol=1e-12)


def test_function_gradient_with_respect_to_T_is_exact_at_its_zeros():
    """d loss / d T[j, y] = -softmax(h)_j / q_y, finite where T[j, y] = 0 (the log-space reference, through
    log T, would give 0 / 0 there)."""
    T = noisy_T().requires_grad_()
    logits, target = batch(dtype=torch.float64)
    pyrobust.forward_corrected_cross_entropy(logits, target, T).backward()
    T64 = T.detach().clone().requires_grad_()
    q = F.softmax(logits, dim=1) @ T64
    valid = target != -100
    (-(q.log().gather(1, target.clamp_min(0)[:, None]).squeeze(1) * valid).sum() / valid.sum()).backward()
    assert torch.isfinite(T.grad).all() and (T.grad[noisy_T() == 0] != 0).any()
    torch.testing.assert_close(T.grad, T64.grad, rtol=1e-10, atol=1e-12)


def test_learnable_T_trains_and_stays_row_stochastic():
    loss = pyrobust.ForwardCorrectedLoss(torch.eye(C, dtype=torch.float64) * 0.7 + 0.3 / C, learnable=True)
    optimiser = torch.optim.SGD(loss.parameters(), lr=1.0)
    logits, target = batch()
    target = torch.where(target == -100, 0, target)
    before = loss(logits, target).item()
    for _ in range(5):
        optimiser.zero_grad()
        loss(logits, target).backward()
        optimiser.step()
    assert loss(logits, target).item() < before
    torch.testing.assert_close(loss.T.sum(dim=1), torch.ones(C))


def test_learnable_checkpoints_round_trip_and_mix_with_fixed_ones():
    learnable = pyrobust.ForwardCorrectedLoss(noisy_T(0), learnable=True)
    with torch.no_grad():
        learnable.T_logits.add_(torch.randn(C, C) * 0.1)
    state = roundtrip(learnable.state_dict())
    other = pyrobust.ForwardCorrectedLoss(noisy_T(1), learnable=True)
    other.load_state_dict(state)
    assert torch.equal(other.T_logits, learnable.T_logits) and other.T_logits.t().is_contiguous()
    logits, target = batch()
    assert torch.equal(other(logits, target), learnable(logits, target))
    fixed = pyrobust.ForwardCorrectedLoss(noisy_T(1))
    fixed.load_state_dict(state)  # the learnable T's matrix, under "T"
    torch.testing.assert_close(fixed.T, learnable.T.detach().double())
    restarted = pyrobust.ForwardCorrectedLoss(noisy_T(1), learnable=True)
    restarted.load_state_dict(roundtrip(pyrobust.ForwardCorrectedLoss(noisy_T(0)).state_dict()))
    torch.testing.assert_close(restarted.T.double(), noisy_T(0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("feature", ["label_smoothing", "probabilities"])
def test_learnable_T_with_class_probabilities_differentiates_through_the_soft_path(feature):
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(), learnable=True, label_smoothing=0.1 if feature == "label_smoothing" else 0.0)
    logits, target = batch(dtype=torch.float32)
    if feature == "probabilities":
        target = F.one_hot(target.clamp_min(0), C).float() * 0.9 + 0.1 / C
    loss(logits, target).backward()
    theta = loss.T_logits.detach().clone().requires_grad_()
    expected = pyrobust.forward_corrected_cross_entropy(logits, target, torch.softmax(theta, dim=1),
                                                        label_smoothing=loss.label_smoothing)
    expected.backward()
    torch.testing.assert_close(loss.T_logits.grad, theta.grad)


def test_learnable_T_under_autocast_runs_in_float32():
    loss = pyrobust.ForwardCorrectedLoss(noisy_T(), learnable=True)
    logits, target = batch()
    layer = torch.nn.Linear(C, C)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = layer(logits)
        assert h.dtype == torch.bfloat16
        value = loss(h, target)
    assert value.dtype == torch.float32
    value.backward()
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(loss.T_logits.grad).all()
    expected = pyrobust.ForwardCorrectedLoss(noisy_T(), learnable=True)(h.detach().float(), target)
    torch.testing.assert_close(value, expected)
