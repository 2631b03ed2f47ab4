"""pyrobust.losses.corrected: the forward/backward corrected cross-entropies against independent formulas."""

import math

import numpy

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust import _reference
from pyrobust._checks import DtypeError
from pyrobust.losses import MAX_CONDITION_NUMBER, condition_number, identity_mix_for

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["mean", "sum", "none"]
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def mnist_T(N: float) -> torch.Tensor:
    """The paper's MNIST noise (sec. 5.1): 2->7, 3->8, 5<->6, 7->1 with probability N (has zeros)."""
    T = torch.eye(10, dtype=torch.float64)
    for clean, noisy in ((2, 7), (3, 8), (5, 6), (6, 5), (7, 1)):
        T[clean, clean] = 1 - N
        T[clean, noisy] = N
    return T


def dense_T(C: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C / 4 * torch.eye(C, dtype=torch.float64)
    return T / T.sum(dim=1, keepdim=True)


TRANSITIONS = {"identity": torch.eye(10, dtype=torch.float64), "mnist_0.6": mnist_T(0.6), "dense": dense_T(10)}


def batch(C, B=33, scale=3.0, seed=0, ignore=True):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(B, C, generator=g, dtype=torch.float64)
    target = torch.randint(0, C, (B,), generator=g)
    if ignore:
        target[::7] = -100
    return logits, target


def paper_forward(logits, target, T):
    """Eq. 5 as written: -log (T^T softmax(h))_y, in float64 (no log-space tricks)."""
    return -torch.log(F.softmax(logits, dim=1) @ T).gather(1, target[:, None]).squeeze(1)


def paper_backward(logits, target, T):
    """Theorem 1 as written: (T^-1 l(h))_y with l(h)_j = -log softmax(h)_j."""
    return (-F.log_softmax(logits, dim=1) @ torch.linalg.inv(T).t()).gather(1, target[:, None]).squeeze(1)


def reduce(loss, target, reduction):
    valid = target != -100
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / valid.sum()}[reduction]


def value_and_grad(fn, logits):
    h = logits.clone().requires_grad_()
    value = fn(h)
    (grad,) = torch.autograd.grad(value.sum(), h)
    return value.detach(), grad


# --- agreement with the formulas --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist_0.6", "dense"])
def test_reference_matches_the_paper_formulas(name):
    T = TRANSITIONS[name]
    logits, target = batch(10, ignore=False)
    log_T_t, T_inv = T.log().t().contiguous(), torch.linalg.inv(T)
    torch.testing.assert_close(
        _reference.forward_corrected_ce(logits, target, log_T_t), paper_forward(logits, target, T), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        _reference.backward_corrected_ce(logits, target, T_inv), paper_backward(logits, target, T), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(TRANSITIONS))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [3.0, 100.0])
def test_agrees_with_float64_reference(device, dtype, name, reduction, scale):
    T = TRANSITIONS[name]
    logits, target = batch(10, scale=scale)
    if scale == 100.0:  # extreme logits: +-100 exactly, one-hot-like rows
        logits = 100.0 * torch.sign(logits)
    log_T_t, T_inv = T.log().t().contiguous(), torch.linalg.inv(T)
    cases = (
        (pyrobust.forward_corrected_cross_entropy, dict(T=T), _reference.forward_corrected_ce, log_T_t),
        (pyrobust.backward_corrected_cross_entropy, dict(T=T), _reference.backward_corrected_ce, T_inv),
    )
    for fn, kw, ref, table in cases:
        expected, expected_grad = value_and_grad(lambda h: reduce(ref(h, target, table), target, reduction), logits)
        kw = {k: v.to(device) for k, v in kw.items()}
        value, grad = value_and_grad(
            lambda h: fn(h, target.to(device), reduction=reduction, **kw), logits.to(device, dtype)
        )
        assert value.dtype == dtype and grad.dtype == dtype
        # losses reach ~100 * ||T^-1|| with +-100 logits: compare relative to their scale
        tol = {k: v * (scale if k == "atol" else 1) for k, v in TOL[dtype].items()}
        torch.testing.assert_close(value.cpu().double(), expected, **tol)
        torch.testing.assert_close(grad.cpu().double(), expected_grad, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_identity_T_is_cross_entropy(device, dtype, reduction):
    logits, target = batch(7, B=20)
    logits, target = logits.to(device, dtype), target.to(device)
    I = torch.eye(7, dtype=torch.float64, device=device)
    expected, expected_grad = value_and_grad(lambda h: F.cross_entropy(h, target, reduction=reduction), logits)
    for fn in (pyrobust.forward_corrected_cross_entropy, pyrobust.backward_corrected_cross_entropy):
        value, grad = value_and_grad(lambda h: fn(h, target, I, reduction=reduction), logits)
        torch.testing.assert_close(value, expected, **TOL[dtype])
        torch.testing.assert_close(grad, expected_grad, **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("C", [1000, 10_000])
def test_many_classes_read_only_the_target_rows(device, C):
    """C up to 10,000: the kernels read row y of the table only, so other rows may hold anything."""
    B = 4
    g = torch.Generator().manual_seed(C)
    logits = 5 * torch.randn(B, C, generator=g, dtype=torch.float64)
    target = torch.randint(0, C, (B,), generator=g)
    rows = torch.rand(B, C, generator=g, dtype=torch.float64)
    rows[:, ::3] = 0  # zeros in T: -inf in log space
    rows /= rows.sum(dim=1, keepdim=True)
    for op, ref, values in (
        (torch.ops.pyrobust._forward_corrected_ce, _reference.forward_corrected_ce, rows.log()),
        (torch.ops.pyrobust._backward_corrected_ce, _reference.backward_corrected_ce, 3 * rows - 2 / C),  # rows sum to 1 like T^-1
    ):
        table = torch.full((C, C), float("nan"), dtype=torch.float32)
        table[target] = values.float()
        expected, expected_grad = value_and_grad(lambda h: ref(h, target, table.double()), logits)
        loss, grad = op(logits.float().to(device), target.to(device), table.to(device), -100, 0)
        torch.testing.assert_close(loss.cpu().double(), expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(grad.cpu().double(), expected_grad, rtol=1e-5, atol=1e-6)
        del table


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch_returns_what_cross_entropy_returns(device, reduction):
    logits, target = torch.empty(0, 10, device=device), torch.empty(0, dtype=torch.int64, device=device)
    expected = F.cross_entropy(logits, target, reduction=reduction)
    for fn in (pyrobust.forward_corrected_cross_entropy, pyrobust.backward_corrected_cross_entropy):
        torch.testing.assert_close(fn(logits, target, mnist_T(0.2), reduction=reduction), expected, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", ["fused", "reference"])
def test_mean_over_no_rows_is_nan_with_zero_gradient_like_cross_entropy(device, path):
    """Every target ignored: F.cross_entropy gives nan (0 / 0) and a zero gradient, and so do both losses,
    fused or through the reference (taken when T requires grad)."""
    logits, target = batch(10, B=5)
    logits, target = logits.to(device), torch.full_like(target, -100).to(device)
    expected, expected_grad = value_and_grad(lambda h: F.cross_entropy(h, target), logits)
    T = mnist_T(0.2).to(device).requires_grad_(path == "reference")
    for fn in (pyrobust.forward_corrected_cross_entropy, pyrobust.backward_corrected_cross_entropy):
        value, grad = value_and_grad(lambda h: fn(h, target, T), logits)
        assert torch.isnan(value) and torch.isnan(expected)
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def test_forward_is_exact_where_T_has_zeros():
    """No clipping: with q_y = T[:, y]^T p tiny, the loss is -log q_y exactly, not -log(1e-7)."""
    T = mnist_T(0.6)
    logits = torch.full((1, 10), -50.0, dtype=torch.float64)
    logits[0, 0] = 50.0  # p concentrated on class 0, which never turns into a 1
    target = torch.tensor([1])  # a noisy 1 comes only from a clean 1 (T[1, 1] = 1) or 7 (T[7, 1] = 0.6)
    p = F.softmax(logits, dim=1)[0]
    expected = -torch.log(T[1, 1] * p[1] + T[7, 1] * p[7])
    value = pyrobust.forward_corrected_cross_entropy(logits, target, T)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    assert value > 99  # far beyond -log(1e-7) = 16.1


# --- the paper's theorems -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist_0.6", "dense"])
def test_theorem_1_backward_correction_is_unbiased(name):
    """E_{y~ ~ T[y]} loss_backward(h, y~) = CE(h, y), the expectation summed exactly over noisy labels."""
    T = TRANSITIONS[name]
    logits, _ = batch(10, B=8, ignore=False)
    clean = torch.arange(8) % 10
    noisy_losses = torch.stack(
        [pyrobust.backward_corrected_cross_entropy(logits, torch.full((8,), j), T, reduction="none") for j in range(10)],
        dim=1,
    )  # (B, C): loss for every noisy label
    expectation = (T[clean] * noisy_losses).sum(dim=1)
    torch.testing.assert_close(expectation, F.cross_entropy(logits, clean, reduction="none"), rtol=1e-10, atol=1e-10)


def test_theorem_4_hessians_of_backward_correction():
    """ReLU net: Hessians of backward-corrected and plain CE agree w.r.t. logits and last layer, but the
    cross terms between the last two layers differ (the noise term is bilinear in W1, W2)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    W1 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    W2 = torch.randn(3, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    T = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.1, 0.6]], dtype=torch.float64)
    T_inv = torch.linalg.inv(T)

    def backward_loss(z):  # the fused op is first-order only: the Hessian needs the reference formula
        return _reference.backward_corrected_ce(z, y, T_inv).mean()

    def ce(z):
        return F.cross_entropy(z, y)

    z = torch.relu(x @ W1.t()) @ W2.t()
    H = torch.autograd.functional.hessian
    torch.testing.assert_close(H(backward_loss, z), H(ce, z), rtol=1e-10, atol=1e-10)

    def net(loss):
        return lambda A, B: loss(torch.relu(x @ A.t()) @ B.t())

    H_back, H_ce = H(net(backward_loss), (W1, W2)), H(net(ce), (W1, W2))
    for same in ((0, 0), (1, 1)):  # W1-W1 (piecewise linear noise term) and last layer W2-W2
        torch.testing.assert_close(H_back[same[0]][same[1]], H_ce[same[0]][same[1]], rtol=1e-10, atol=1e-10)
    cross = (H_back[0][1] - H_ce[0][1]).abs().max()
    assert cross > 0.05 * H_ce[0][1].abs().max()  # clearly nonzero, not round-off


# --- modules ------------------------------------------------------------------------------------------


def test_modules_match_functions_and_cache_tables():
    T = mnist_T(0.6)
    logits, target = batch(10)
    for module, fn in (
        (pyrobust.ForwardCorrectedLoss(T, reduction="sum"), pyrobust.forward_corrected_cross_entropy),
        (pyrobust.BackwardCorrectedLoss(T, reduction="sum"), pyrobust.backward_corrected_cross_entropy),
    ):
        for dtype in DTYPES:
            h = logits.to(dtype)
            torch.testing.assert_close(module(h, target), fn(h, target, T, reduction="sum"))
            table = module._tables[(h.device, dtype)]
            module(h, target)
            assert module._tables[(h.device, dtype)] is table
        assert len(module._tables) == 2


def test_module_under_torch_compile_fullgraph():
    loss = pyrobust.ForwardCorrectedLoss(mnist_T(0.6))
    logits, target = batch(10)
    logits = logits.float()
    loss(logits, target)  # derives and caches log T^T
    h1, h2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss(h1, target).backward()
    torch.compile(loss, fullgraph=True, backend="aot_eager")(h2, target).backward()
    torch.testing.assert_close(h2.grad, h1.grad)


def test_autocast_cpu_computes_in_float32():
    T = mnist_T(0.6)
    logits, target = batch(10)
    layer = torch.nn.Linear(10, 10).double()
    x = logits.float()
    layer = layer.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = layer(x)
        assert h.dtype == torch.bfloat16
        value = pyrobust.forward_corrected_cross_entropy(h, target, T)
    assert value.dtype == torch.float32
    expected = _reference.forward_corrected_ce(h.detach().double(), target, T.log().t())
    torch.testing.assert_close(value.double(), reduce(expected, target, "mean"), rtol=1e-6, atol=1e-6)
    value.backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_autocast_cuda_feeds_16_bit_logits_to_the_kernels(kind, dtype):
    """On CUDA the kernels take the 16-bit logits of autocast as they are (float32 inside); the loss is
    float32 and the logits' gradient comes back in their own dtype."""
    T = mnist_T(0.6).cuda()
    logits, target = batch(10, ignore=False)
    target = target.cuda()
    layer = torch.nn.Linear(10, 10).cuda()
    with torch.autocast("cuda", dtype=dtype):
        h = layer(logits.float().cuda())
        assert h.dtype == dtype
        h.retain_grad()
        loss_fn = getattr(pyrobust, f"{kind}_corrected_cross_entropy")
        value = loss_fn(h, target, T)
    assert value.dtype == torch.float32
    value.backward()
    paper = paper_forward if kind == "forward" else paper_backward
    h64 = h.detach().double().requires_grad_()
    expected = paper(h64, target, T).mean()
    expected.backward()
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-5)
    assert h.grad.dtype == dtype
    torch.testing.assert_close(h.grad.double(), h64.grad, rtol=1e-2, atol=1e-5)
    assert torch.isfinite(layer.weight.grad).all()


def test_gradient_reaches_T_when_it_requires_grad():
    T = dense_T(5).requires_grad_()
    logits, target = batch(5)
    pyrobust.forward_corrected_cross_entropy(logits, target, T).backward()
    expected = torch.autograd.grad(
        reduce(_reference.forward_corrected_ce(logits, target, T.log().t()), target, "mean"), T
    )[0]
    torch.testing.assert_close(T.grad, expected)


def test_identity_mix_is_the_papers_remedy():
    T = mnist_T(0.5)  # 5<->6 with N = 0.5: two equal rows, singular
    logits, target = batch(10)
    with pytest.raises(ValueError, match=r"T is singular \(1-norm condition number inf > 100\).*identity_mix=0\.0[1-9]"):
        pyrobust.backward_corrected_cross_entropy(logits, target, T)
    with pytest.raises(ValueError, match="T is singular"):
        pyrobust.BackwardCorrectedLoss(T)
    lam = 0.1
    mixed = (1 - lam) * T + lam * torch.eye(10, dtype=torch.float64)
    expected = pyrobust.backward_corrected_cross_entropy(logits, target, T_inv=torch.linalg.inv(mixed))
    torch.testing.assert_close(pyrobust.backward_corrected_cross_entropy(logits, target, T, identity_mix=lam), expected)
    torch.testing.assert_close(pyrobust.BackwardCorrectedLoss(T, identity_mix=lam)(logits, target), expected)


def test_ill_conditioned_T_reports_its_condition_number():
    T = mnist_T(0.49999)
    cond = numpy.linalg.cond(T.numpy(), 1)  # an independent 1-norm condition number
    with pytest.raises(ValueError, match=rf"T is ill-conditioned \(1-norm condition number {cond:.3g}".replace("+", r"\+")):
        pyrobust.backward_corrected_cross_entropy(*batch(10), T)


# --- conditioning of T (pyrobust.losses.conditioning, paper sec. 4.1) ----------------------------------


def mixed(T: torch.Tensor, lam: float) -> torch.Tensor:
    return (1 - lam) * T + lam * torch.eye(T.shape[0], dtype=T.dtype)


def identity_mix_by_brute_force(T: torch.Tensor, max_condition: float) -> float:
    """The smallest lam in {0, 0.01, ..., 1} whose mix NumPy's 1-norm condition number puts under the limit."""
    for step in range(101):
        M = mixed(T, step / 100).numpy()
        with numpy.errstate(all="ignore"):
            cond = numpy.linalg.cond(M, 1) if abs(numpy.linalg.det(M)) > 0 else math.inf
        if math.isfinite(cond) and cond <= max_condition:
            return step / 100
    return 1.0


def T_with_condition_number(target: float) -> torch.Tensor:
    """mnist_T(0.5) (singular) mixed with I just enough that cond_1 = target, within 1e-9 relative."""
    low, high = 0.0, 1.0  # cond_1(mixed(T, lam)) decreases with lam
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if condition_number(mixed(mnist_T(0.5), mid)) > target else (low, mid)
    return mixed(mnist_T(0.5), low)  # the side above target


def test_condition_number_is_the_1_norm_one_and_inf_for_singular_T():
    T = dense_T(10)
    assert condition_number(T) == pytest.approx(numpy.linalg.cond(T.numpy(), 1), rel=1e-12)
    assert condition_number(T.float()) == pytest.approx(numpy.linalg.cond(T.float().double().numpy(), 1), rel=1e-12)
    assert condition_number(torch.eye(4)) == 1.0
    assert condition_number(mnist_T(0.5)) == math.inf  # two equal rows: an exactly zero pivot
    assert condition_number(torch.zeros(3, 3)) == math.inf
    assert condition_number(mnist_T(0.49999)) == pytest.approx(numpy.linalg.cond(mnist_T(0.49999).numpy(), 1))
    with pytest.raises(ValueError, match=r"T must be a square, non-empty C x C matrix, got shape \(3, 2\)"):
        condition_number(torch.ones(3, 2))


@pytest.mark.parametrize("max_condition", [1.5, 10.0, 100.0, 1e4])
@pytest.mark.parametrize("name", ["mnist_0.5", "mnist_0.49999", "mnist_0.6", "dense", "identity"])
def test_identity_mix_for_is_the_smallest_mix_under_the_limit(name, max_condition):
    T = {"mnist_0.5": mnist_T(0.5), "mnist_0.49999": mnist_T(0.49999), **TRANSITIONS}.get(name)
    lam = identity_mix_for(T, max_condition)
    assert lam == identity_mix_by_brute_force(T, max_condition)
    assert condition_number(mixed(T, lam)) <= max_condition
    if lam > 0:
        assert condition_number(mixed(T, (round(lam * 100) - 1) / 100)) > max_condition


def test_identity_mix_for_makes_the_backward_loss_accept_T():
    logits, target = batch(10)
    for T in (mnist_T(0.5), mnist_T(0.49999), T_with_condition_number(5e4)):
        for max_condition in (10.0, MAX_CONDITION_NUMBER):  # a stricter target, the loss's own limit
            lam = identity_mix_for(T, max_condition)
            assert 0 < lam < 1
            loss = pyrobust.backward_corrected_cross_entropy(logits, target, T, identity_mix=lam)
            assert torch.isfinite(loss)
            pyrobust.BackwardCorrectedLoss(T, identity_mix=lam)


def test_the_loss_refuses_what_condition_number_puts_over_the_limit_and_no_more():
    assert MAX_CONDITION_NUMBER == 100.0
    logits, target = batch(10)
    over = T_with_condition_number(MAX_CONDITION_NUMBER)
    assert MAX_CONDITION_NUMBER < condition_number(over) < MAX_CONDITION_NUMBER * (1 + 1e-9)
    with pytest.raises(ValueError, match=r"T is ill-conditioned \(1-norm condition number 100 > 100\)"):
        pyrobust.backward_corrected_cross_entropy(logits, target, over)
    under = T_with_condition_number(MAX_CONDITION_NUMBER * (1 - 1e-6))
    assert condition_number(under) <= MAX_CONDITION_NUMBER
    pyrobust.backward_corrected_cross_entropy(logits, target, under)
    # identity_mix_for(T) (the loss's limit by default): the smallest lam on its grid that the loss accepts
    lam = identity_mix_for(over)
    assert lam == 0.01
    pyrobust.BackwardCorrectedLoss(over, identity_mix=lam)
    with pytest.raises(ValueError, match="T is ill-conditioned"):
        pyrobust.BackwardCorrectedLoss(over, identity_mix=0.0)
    # and the forward correction, which inverts nothing, takes any T
    pyrobust.forward_corrected_cross_entropy(logits, target, mnist_T(0.5))


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "T, error, match",
    [
        (torch.ones(10, 9) / 9, ValueError, r"T must be a square C x C matrix, got shape \(10, 9\)"),
        (torch.eye(9), ValueError, "T is 9 x 9 but the logits have 10 classes"),
        (mnist_T(0.6) * 1.1, ValueError, "T is not row-stochastic: row 0 sums to 1.1"),
        (mnist_T(0.6).index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"), dtype=torch.float64)), ValueError, "non-finite"),
        (torch.eye(10) * 2 - torch.eye(10).roll(1, 0), ValueError, "T has a negative entry"),
    ],
)
def test_bad_T(T, error, match):
    logits, target = batch(10)
    with pytest.raises(error, match=match):
        pyrobust.forward_corrected_cross_entropy(logits, target, T)
    with pytest.raises(error, match=match):
        pyrobust.backward_corrected_cross_entropy(logits, target, T)


def test_bad_inputs():
    T = mnist_T(0.6)
    logits, target = batch(10)
    fwd = pyrobust.forward_corrected_cross_entropy
    cases = [
        (lambda: fwd(logits, target.float(), T), DtypeError,
         r"target must hold int64 \(or uint8\) class indices, got torch.float32: pass target.long\(\)"),
        (lambda: fwd(logits, target.int(), T), DtypeError, r"got torch.int32: pass target.long\(\)"),
        (lambda: fwd(logits.long(), target, T), DtypeError, "logits must be floating point"),
        (lambda: fwd(logits[0], target, T), ValueError, r"target must have shape \(\) to match logits \(10,\)"),
        (lambda: fwd(logits[0, 0], target[0], T), ValueError, "logits must have a class dimension"),
        (lambda: fwd(logits, logits.long(), T), DtypeError, "holds class probabilities and must be floating point"),
        (lambda: fwd(logits, target, T, weight=torch.ones(9)), ValueError, r"weight must have shape \(10,\)"),
        (lambda: fwd(logits, target, T, weight=torch.ones(10, dtype=torch.int64)), DtypeError, "weight must be floating"),
        (lambda: fwd(logits, target, T, label_smoothing=1.5), ValueError, r"label_smoothing must lie in \[0, 1\]"),
        (lambda: fwd(logits, logits.softmax(1), T, ignore_index=3), ValueError, "ignore_index is not supported"),
        (lambda: fwd(logits, target[:-1], T), ValueError, r"target must have shape \(33,\)"),
        (lambda: fwd(logits, target.to("meta"), T), ValueError, "logits are on cpu but target is on meta"),
        (lambda: fwd(logits, target, T, reduction="avg"), ValueError, "reduction must be one of"),
        (lambda: fwd(logits, target.clamp(min=0) + 1, T), IndexError, r"target\[\d+\] = 10 is out of range for 10"),
        (lambda: pyrobust.backward_corrected_cross_entropy(logits, target), ValueError, "exactly one of T and T_inv"),
        (
            lambda: pyrobust.backward_corrected_cross_entropy(logits, target, T_inv=torch.eye(9)),
            ValueError,
            "T_inv must be 10 x 10",
        ),
        (
            lambda: pyrobust.backward_corrected_cross_entropy(logits, target, T, identity_mix=1.5),
            ValueError,
            r"identity_mix must lie in \[0, 1\]",
        ),
        (lambda: pyrobust.ForwardCorrectedLoss(T)(logits[:, :9], target.clamp(max=8)), ValueError, "T is 10 x 10 but"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_reference_checks_targets():
    logits, target, T = torch.randn(3, 5), torch.tensor([0, -100, 7]), dense_T(5)
    with pytest.raises(IndexError, match=r"target\[2\] = 7 is out of range for 5 classes"):
        _reference.forward_corrected_ce(logits, target, T.log().t())
    with pytest.raises(IndexError, match=r"target\[2\] = 7 is out of range for 5 classes"):
        _reference.backward_corrected_ce(logits, target, torch.linalg.inv(T))


def test_backward_clip_matches_the_clipped_formula_and_bounds_the_loss():
    """clip=eps: -sum_j T^-1[y, j] log clip(p_j, eps, 1 - eps), zero gradient where p is clipped."""
    T = mnist_T(0.6)
    T_inv = torch.linalg.inv(T)
    assert (T_inv < 0).any()  # the case where the exact loss is unbounded below
    eps = 1e-7
    logits = torch.randn(16, 10, dtype=torch.float64) * 30  # many probabilities below eps
    target = torch.arange(16) % 10
    logits.requires_grad_(True)
    loss = pyrobust.backward_corrected_cross_entropy(logits, target, T, reduction="none", clip=eps)
    p = torch.softmax(logits.detach(), dim=1)
    expected = -(T_inv[target] * p.clamp(eps, 1 - eps).log()).sum(dim=1)
    torch.testing.assert_close(loss.detach(), expected)
    loss.sum().backward()
    # d/dh_k of -sum_j w_j log p_j over the unclipped j: p_k * sum_{j unclipped} w_j - w_k [k unclipped]
    w = T_inv[target]
    inside = (p > eps) & (p < 1 - eps)
    expected_grad = p * (w * inside).sum(dim=1, keepdim=True) - w * inside
    torch.testing.assert_close(logits.grad, expected_grad)
    # bounded: -log(eps) times the negative mass of each T^-1 row, whatever the logits
    bound = (T_inv.clamp(max=0).sum(dim=1) * -math.log(eps))[target]
    assert (loss.detach() >= bound - 1e-9).all()
    # clip=0 is the exact (fused) loss
    exact = pyrobust.backward_corrected_cross_entropy(logits.detach(), target, T, reduction="none")
    torch.testing.assert_close(exact, paper_backward(logits.detach(), target, T))
    module = pyrobust.BackwardCorrectedLoss(T, reduction="none", clip=eps)
    torch.testing.assert_close(module(logits.detach(), target), expected)


@pytest.mark.parametrize("clip", [-1e-7, 0.5, 1.0])
def test_backward_clip_out_of_range_raises(clip):
    logits, target = torch.randn(4, 10), torch.arange(4)
    with pytest.raises(ValueError, match=r"clip must lie in \[0, 0.5\)"):
        pyrobust.backward_corrected_cross_entropy(logits, target, mnist_T(0.2), clip=clip)
