"""The custom ops torch.ops.pyrobust.*: registration, opcheck, autograd, compile, autocast, fallback."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import pyrobust
from pyrobust import _ops, _reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
ops = torch.ops.pyrobust
NONE, MEAN, SUM = 0, 1, 2  # at::Reduction


def _inputs(device, dtype, B=6, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=g, dtype=torch.float64).mul(3).to(device, dtype)
    target = torch.randint(0, C, (B,), generator=g).to(device)
    target[1] = -100
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + 2 * torch.eye(C, dtype=torch.float64)
    T /= T.sum(dim=1, keepdim=True)
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    log_T_t = T.log().t().contiguous().to(device, table_dtype)
    T_inv = torch.linalg.inv(T).contiguous().to(device, table_dtype)
    return logits, target, log_T_t, T_inv


def test_cpu_kernel_is_compiled_and_in_use():
    assert pyrobust.backend("cpu") == "cpp"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_opcheck(device, dtype, reduction):
    logits, target, log_T_t, T_inv = _inputs(device, dtype)
    for op, table in (("forward_corrected_ce", log_T_t), ("backward_corrected_ce", T_inv)):
        torch.library.opcheck(getattr(ops, op), (logits.clone().requires_grad_(), target, table, -100, reduction))
        torch.library.opcheck(getattr(ops, "_" + op), (logits, target, table, -100, reduction))
    grad_loss = torch.rand(logits.shape[0] if reduction == NONE else (), dtype=logits.dtype, device=device)
    torch.library.opcheck(ops.scale_grad, (logits, grad_loss))
    torch.library.opcheck(ops.scale_grad_, (logits.clone(), torch.tensor(0.5, dtype=logits.dtype, device=device)))


@pytest.mark.parametrize("device", DEVICES)
def test_kernels_match_reference_and_return_their_gradient(device):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    for op, ref, table in (
        (ops._forward_corrected_ce, _reference.forward_corrected_ce, log_T_t),
        (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv),
    ):
        loss, grad = op(logits, target, table, -100, NONE)
        h = logits.clone().requires_grad_()
        expected = ref(h, target, table, -100)
        (expected_grad,) = torch.autograd.grad(expected.sum(), h)
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
        assert loss[1] == 0 and (grad[1] == 0).all()  # ignore_index row
        assert loss.dtype == torch.float64 and grad.dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", [MEAN, SUM])
def test_reduced_ops_match_the_reduced_reference(device, reduction):
    """The ops reduce as F.cross_entropy does: a mean over the rows not ignored (row 1 is), or a sum; their
    kernels return the gradient of that reduced loss."""
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    valid = target != -100
    for name, ref, table in (
        ("forward_corrected_ce", _reference.forward_corrected_ce, log_T_t),
        ("backward_corrected_ce", _reference.backward_corrected_ce, T_inv),
    ):
        h = logits.clone().requires_grad_()
        rows = ref(h, target, table, -100)
        expected = rows.sum() / valid.sum() if reduction == MEAN else rows.sum()
        (expected_grad,) = torch.autograd.grad(expected, h)
        loss, grad = getattr(ops, "_" + name)(logits, target, table, -100, reduction)
        assert loss.shape == () and loss.dtype == torch.float64
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
        h.grad = None
        getattr(ops, name)(h, target, table, -100, reduction).backward()
        torch.testing.assert_close(h.grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_mean_with_every_row_ignored_is_nan_with_zero_gradient_like_cross_entropy(device):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    target.fill_(-100)
    h = logits.clone().requires_grad_()
    F.cross_entropy(h, target).backward()
    for op, table in ((ops._forward_corrected_ce, log_T_t), (ops._backward_corrected_ce, T_inv)):
        loss, grad = op(logits, target, table, -100, MEAN)
        assert torch.isnan(loss)
        torch.testing.assert_close(grad, h.grad, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_gradcheck(device, reduction):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    logits.requires_grad_()
    for op, table in ((ops.forward_corrected_ce, log_T_t), (ops.backward_corrected_ce, T_inv)):
        assert torch.autograd.gradcheck(lambda h: op(h, target, table, -100, reduction), (logits,))


def _ops_called(fn) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [event.name for event in prof.events()]


def test_backward_of_a_reduced_loss_makes_no_pass_when_its_gradient_is_one():
    """loss.backward() on CPU hands autograd the gradient saved by the forward: no scale_grad, no copy; any
    other scalar gradient scales that buffer in place."""
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    h = logits.clone().requires_grad_()

    def step(factor=None):
        loss = ops.forward_corrected_ce(h, target, log_T_t, -100, MEAN)
        (loss if factor is None else factor * loss).backward()

    called = _ops_called(step)
    assert not {"pyrobust::scale_grad", "pyrobust::scale_grad_", "aten::clone", "aten::copy_"} & set(called)
    h.grad = None
    called = _ops_called(lambda: step(2.0))
    assert "pyrobust::scale_grad_" in called and "pyrobust::scale_grad" not in called
    rows = _reference.forward_corrected_ce(h, target, log_T_t.double(), -100)
    torch.testing.assert_close(h.grad, torch.autograd.grad(2 * rows.sum() / 5, h)[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("factor", [1.0, 3.0])
def test_saved_gradient_survives_a_retained_graph_and_in_place_updates_of_grad(device, factor):
    """The buffer handed to autograd is the one the graph keeps: while the graph is retained, it must be
    neither scaled in place nor taken over as logits.grad, so that zeroing or accumulating into
    logits.grad cannot change a later backward."""
    logits, target, _, T_inv = _inputs(device, torch.float64)
    h = logits.clone().requires_grad_()
    loss = factor * ops.backward_corrected_ce(h, target, T_inv, -100, MEAN)
    expected = torch.autograd.grad(factor * ops.backward_corrected_ce(h, target, T_inv, -100, MEAN), h)[0]
    loss.backward(retain_graph=True)
    torch.testing.assert_close(h.grad, expected, rtol=0, atol=0)
    h.grad.zero_()
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(h.grad, 2 * expected, rtol=0, atol=0)
    # logits reaching the loss twice: autograd sums two contributions of the same op
    h.grad = None
    x = h * 1
    summed = [ops.backward_corrected_ce(x, target, T_inv, -100, SUM) for _ in range(2)]
    (factor * (summed[0] + summed[1])).backward()
    torch.testing.assert_close(h.grad, 2 * expected * (target != -100).sum(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_losses_run_in_inference_mode(device):
    """Inference tensors carry no autograd keys: the ops then compute the loss alone."""
    logits, target, log_T_t, T_inv = _inputs(device, torch.float32)
    for name, table in (("forward_corrected_ce", log_T_t), ("backward_corrected_ce", T_inv)):
        expected, _ = getattr(ops, "_" + name)(logits, target, table, -100, MEAN)
        with torch.inference_mode():
            loss = getattr(ops, name)(logits.clone(), target, table, -100, MEAN)
        torch.testing.assert_close(loss, expected, rtol=0, atol=0)


def test_reduction_code_is_checked():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    with pytest.raises(RuntimeError, match=r"reduction must be 0 \(none\), 1 \(mean\) or 2 \(sum\), got 3"):
        ops.forward_corrected_ce(logits, target, log_T_t, -100, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_raises(device):
    logits, target, log_T_t, _ = _inputs(device, torch.float64)
    logits.requires_grad_()
    loss = ops.forward_corrected_ce(logits, target, log_T_t, -100, NONE)
    with pytest.raises(RuntimeError, match="differentiable once; double backward"):
        torch.autograd.grad(loss.sum(), logits, create_graph=True)


def test_backward_op_refuses_a_table_that_requires_grad_rather_than_dropping_its_gradient():
    logits, target, _, T_inv = _inputs("cpu", torch.float64)
    T_inv.requires_grad_()
    with pytest.raises(RuntimeError, match="does not differentiate with respect to T_inv"):
        ops.backward_corrected_ce(logits.requires_grad_(), target, T_inv, -100)
    logits, target, log_T_t, _ = _inputs("cpu", torch.float64)
    with pytest.raises(RuntimeError, match="with respect to log_T_t or to T_t, not both"):
        ops.forward_corrected_ce(logits, target, log_T_t.requires_grad_(), -100, T_t=log_T_t.detach().exp().requires_grad_())


def test_scale_grad_multiplies_rows():
    grad = torch.randn(4, 3, dtype=torch.float64)
    grad_loss = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(ops.scale_grad(grad, grad_loss), grad * grad_loss[:, None], rtol=0, atol=0)
    # the gradient of a "mean" arrives as an expanded scalar, or as a scalar from a reduced op
    torch.testing.assert_close(ops.scale_grad(grad, torch.tensor(0.25, dtype=torch.float64).expand(4)), grad / 4)
    torch.testing.assert_close(ops.scale_grad(grad, torch.tensor(-3.0, dtype=torch.float64)), grad * -3, rtol=0, atol=0)


def test_target_out_of_range_is_an_index_error_like_cross_entropy_on_cpu():
    logits, target, log_T_t, T_inv = _inputs("cpu", torch.float32)
    target[3] = 5
    with pytest.raises(IndexError, match=r"target\[3\] = 5 is out of range for 5 classes \(ignore_index = -100\)"):
        ops.forward_corrected_ce(logits, target, log_T_t, -100)
    with pytest.raises(IndexError, match=r"target\[3\] = 5 is out of range"):
        ops._backward_corrected_ce(logits, target, T_inv, -100, NONE)
    target[3] = -1
    with pytest.raises(IndexError, match=r"target\[3\] = -1 is out of range"):
        ops.backward_corrected_ce(logits, target, T_inv, -100)
    with pytest.raises(IndexError):  # F.cross_entropy's type for the same mistake
        F.cross_entropy(logits, target)
    target[3] = -100  # ignore_index is not a class, and another ignore_index makes -100 one
    ops.forward_corrected_ce(logits, target, log_T_t, -100)
    with pytest.raises(IndexError, match=r"target\[1\] = -100 is out of range for 5 classes \(ignore_index = 4\)"):
        ops.forward_corrected_ce(logits, target, log_T_t, 4)


def test_shapes_are_value_errors_and_dtypes_runtime_errors_like_cross_entropy():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    with pytest.raises(ValueError, match="log_T_t must be 5 x 5"):
        ops.forward_corrected_ce(logits, target, log_T_t[:4, :4], -100)
    with pytest.raises(ValueError, match=r"target must have shape \(6,\)"):
        ops.forward_corrected_ce(logits, target[:5], log_T_t, -100)
    with pytest.raises(ValueError, match=r"logits must be 2-D \(B, C\)"):
        ops.forward_corrected_ce(logits[0], target, log_T_t, -100)
    with pytest.raises(RuntimeError, match="log_T_t must be Float for Float logits, got Double"):
        ops.forward_corrected_ce(logits, target, log_T_t.double(), -100)
    with pytest.raises(RuntimeError, match="target must be int64, got Int"):
        ops.forward_corrected_ce(logits, target.int(), log_T_t, -100)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device, backend):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float32)

    def f(h):
        return (
            ops.forward_corrected_ce(h, target, log_T_t, -100, NONE).sum()
            + ops.backward_corrected_ce(h, target, T_inv, -100, NONE).mean()
            + 2 * ops.forward_corrected_ce(h, target, log_T_t, -100, MEAN)
        )

    compiled = torch.compile(f, fullgraph=True, backend=backend)  # inductor: the ops as extern kernels
    h1, h2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    f(h1).backward()
    compiled(h2).backward()
    torch.testing.assert_close(h2.grad, h1.grad)


def test_autocast_cpu_runs_in_float32():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    h_bf16 = logits.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ops.forward_corrected_ce(h_bf16, target, log_T_t, -100, NONE)
    assert loss.dtype == torch.float32
    expected = ops.forward_corrected_ce(h_bf16.detach().float(), target, log_T_t, -100, NONE)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert h_bf16.grad.dtype == torch.bfloat16


def test_fallback_warns_once_with_the_reason(monkeypatch):
    monkeypatch.setattr(_ops, "_warned", set())
    monkeypatch.setattr(_ops, "_backends", {})
    monkeypatch.setattr(_ops, "_C", None)
    monkeypatch.setattr(_ops, "_IMPORT_ERROR", "ImportError: undefined symbol: _ZN3c10")
    with pytest.warns(RuntimeWarning, match="could not be loaded .*undefined symbol"):
        assert _ops.backend("cpu") == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _ops.backend("cpu") == "reference"  # once per reason


def test_cuda_backend_says_why_it_falls_back(monkeypatch):
    monkeypatch.setattr(_ops, "_warned", set())
    monkeypatch.setattr(_ops, "_backends", {})
    if torch._C._dispatch_has_kernel_for_dispatch_key("pyrobust::_forward_corrected_ce", "CUDA"):
        assert _ops.backend("cuda") == "cuda"
    else:
        with pytest.warns(RuntimeWarning, match="CUDA kernels not compiled into this build"):
            assert _ops.backend("cuda") == "reference"


def test_autograd_nodes_are_named_after_their_losses():
    logits, target, log_T_t, T_inv = _inputs("cpu", torch.float32)
    h = logits.clone().requires_grad_()
    nodes = (ops.forward_corrected_ce(h, target, log_T_t, -100, MEAN).grad_fn.name(),
             ops.backward_corrected_ce(h, target, T_inv, -100, NONE).grad_fn.name())
    assert nodes == ("torch::autograd::CppNode<pyrobust::ForwardCorrectedCrossEntropyBackward>",
                     "torch::autograd::CppNode<pyrobust::BackwardCorrectedCrossEntropyBackward>")


def test_kernels_are_not_differentiable_themselves():
    """Gradients go through the losses' autograd; through a kernel op a backward raises, never returns a
    silently wrong number."""
    logits, target, log_T_t, _ = _inputs("cpu", torch.float64)
    with pytest.raises(RuntimeError, match="_forward_corrected_ce has no derivative: differentiate the loss op"):
        ops._forward_corrected_ce(logits.requires_grad_(), target, log_T_t, -100, MEAN)
    with torch.no_grad():  # values only: fine
        ops._forward_corrected_ce(logits, target, log_T_t, -100, MEAN)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [10, 40])  # few classes run in tiles of rows, many row by row
def test_impossible_noisy_label_gives_infinite_loss(dtype, C):
    """Column y of T all zero: label y cannot be observed, -log 0 = inf (with an undefined gradient)."""
    T = torch.eye(C, dtype=torch.float64)
    T[C - 1] = 0
    T[C - 1, 0] = 1  # clean C-1 always becomes 0: nothing becomes C-1
    logits = torch.randn(9, C, dtype=dtype)
    target = torch.zeros(9, dtype=torch.int64)
    target[[2, 8]] = C - 1
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    loss, grad = ops._forward_corrected_ce(logits, target, T.log().t().contiguous().to(table_dtype), -100, NONE)
    assert torch.isinf(loss[[2, 8]]).all() and torch.isfinite(loss[[0, 1, 3, 4, 5, 6, 7]]).all()
    assert torch.isnan(grad[[2, 8]]).all() and torch.isfinite(grad[[0, 1, 3, 4, 5, 6, 7]]).all()


# --- dropout_mask: the trainer's CPU dropout (pyrobust.models.Dropout) ---------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_mask_keeps_with_probability_one_minus_p_and_scales(dtype, p):
    x = torch.empty(300, 1000, dtype=dtype)
    torch.manual_seed(0)
    mask = ops.dropout_mask(x, p)
    assert mask.shape == x.shape and mask.dtype == dtype
    kept = mask != 0
    assert torch.equal(mask[kept], torch.full_like(mask[kept], 1 / (1 - p)))
    n = mask.numel()
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # no structure along rows, columns or between neighbours: each row's and column's rate is binomial, and
    # an element says nothing about the next one (correlation within 5 standard errors of 0)
    for rates, size in ((kept.double().mean(1), 1000), (kept.double().mean(0), 300)):
        assert (rates - (1 - p)).abs().max() < 5 * math.sqrt(p * (1 - p) / size)
    flat = kept.flatten().double()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()) < 5 / math.sqrt(n)


def test_dropout_mask_follows_the_seed_not_the_thread_count():
    x = torch.empty(1000, 1000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(7)
        one_thread, second_call = ops.dropout_mask(x, 0.5), ops.dropout_mask(x, 0.5)
        torch.set_num_threads(2)
        torch.manual_seed(7)
        assert torch.equal(ops.dropout_mask(x, 0.5), one_thread)
    finally:
        torch.set_num_threads(threads)
    # consecutive calls draw new keys: independent masks
    a, b = (one_thread != 0).flatten().double(), (second_call != 0).flatten().double()
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 5 / math.sqrt(a.numel())
    # an explicit generator, as torch's samplers take
    masks = [ops.dropout_mask(x, 0.3, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(*masks)


def test_dropout_mask_checks_its_arguments():
    torch.library.opcheck(ops.dropout_mask, (torch.empty(4, 5), 0.5), test_utils=("test_schema", "test_faketensor"))
    with pytest.raises(RuntimeError, match=r"needs 0 <= p < 1, got 1"):
        ops.dropout_mask(torch.empty(3), 1.0)
    with pytest.raises(RuntimeError, match="float32 or float64 tensors, got BFloat16"):
        ops.dropout_mask(torch.empty(3, dtype=torch.bfloat16), 0.5)


# --- the ops' optional inputs: the T_t cache, class weights, offset; the table gradient; a learnable T ---


def _extras(C, dtype, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    weight = (torch.rand(C, generator=g, dtype=torch.float64) + 0.5).to(device, dtype)
    offset = (torch.randn(C, generator=g, dtype=torch.float64) / C).to(device, dtype)
    return weight, offset


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_opcheck_optional_inputs_and_table_gradients(device, dtype, reduction):
    logits, target, log_T_t, T_inv = _inputs(device, dtype)
    weight, offset = _extras(logits.shape[1], log_T_t.dtype, device)
    T_t = log_T_t.exp()
    h = logits.clone().requires_grad_()
    torch.library.opcheck(ops.forward_corrected_ce, (h, target, log_T_t, -100, reduction), dict(T_t=T_t, weight=weight))
    torch.library.opcheck(ops.backward_corrected_ce, (h, target, T_inv, -100, reduction), dict(weight=weight, offset=offset))
    torch.library.opcheck(ops._forward_corrected_ce, (logits, target, log_T_t, -100, reduction, T_t, weight))
    torch.library.opcheck(ops._backward_corrected_ce, (logits, target, T_inv, -100, reduction, weight, offset))
    # a table that requires grad: log_T_t (a learnable T's log) or T_t (a T given to the function form)
    torch.library.opcheck(ops.forward_corrected_ce, (h, target, log_T_t.clone().requires_grad_(), -100, reduction),
                          dict(T_t=T_t, weight=weight))
    torch.library.opcheck(ops.forward_corrected_ce, (h, target, log_T_t, -100, reduction),
                          dict(T_t=T_t.clone().requires_grad_()))
    if device == "cpu":  # the fused table gradient is a CPU kernel
        row_grad = torch.rand(logits.shape[0], dtype=log_T_t.dtype) if reduction == NONE else None
        for wrt_log in (True, False):
            torch.library.opcheck(ops._forward_corrected_ce_table_grad,
                                  (logits, target, log_T_t, -100, reduction, T_t, weight, row_grad, wrt_log))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_gradcheck_optional_inputs_and_tables(device, reduction):
    """float64 gradcheck of the logits' gradient with weights (and offset), and of the table's gradient
    through log_T_t and through T_t, including zeros of T (T_t) and every row of a class ignored."""
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    weight, offset = _extras(logits.shape[1], torch.float64, device)
    h = logits.clone().requires_grad_()
    lt = log_T_t.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h, lt: ops.forward_corrected_ce(h, target, lt, -100, reduction, T_t=lt.detach().exp(), weight=weight),
        (h, lt))
    T_t = log_T_t.exp()
    T_t[0, 3] = 0  # a zero of T: the gradient there is -p_j / q_y, finite
    T_t /= T_t.sum(dim=0, keepdim=True)
    assert torch.autograd.gradcheck(
        lambda h, Tt: ops.forward_corrected_ce(h, target, Tt.detach().log(), -100, reduction, T_t=Tt, weight=weight),
        (h, T_t.clone().requires_grad_()))
    assert torch.autograd.gradcheck(
        lambda h: ops.backward_corrected_ce(h, target, T_inv, -100, reduction, weight=weight, offset=offset), (h,))


def _theta_t(C, dtype=torch.float64, seed=2):
    """Free logits of a learnable T, transposed, with two near-zeros of T (LOG_ZERO-like entries)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(C, C, generator=g, dtype=torch.float64) + 2 * torch.eye(C, dtype=torch.float64)
    theta[0, 1] = theta[2, 0] = -1000.0
    return theta.t().contiguous().to(dtype)


@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_learnable(reduction, dtype):
    logits, target, _, _ = _inputs("cpu", dtype)
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    theta_t = _theta_t(logits.shape[1], table_dtype)
    weight, _ = _extras(logits.shape[1], table_dtype, "cpu")
    h = logits.clone().requires_grad_()
    torch.library.opcheck(ops.forward_corrected_ce_learnable, (h, target, theta_t.clone().requires_grad_(), -100, reduction),
                          dict(weight=weight))
    row_grad = torch.rand(logits.shape[0], dtype=table_dtype) if reduction == NONE else None
    torch.library.opcheck(ops._forward_corrected_ce_learnable, (logits, target, theta_t, -100, reduction, weight, row_grad))


@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_gradcheck_learnable(reduction):
    logits, target, _, _ = _inputs("cpu", torch.float64, B=9, C=4)
    weight, _ = _extras(4, torch.float64, "cpu")
    theta_t = _theta_t(4)
    assert torch.autograd.gradcheck(
        lambda h, th: ops.forward_corrected_ce_learnable(h, target, th, -100, reduction, weight=weight),
        (logits.clone().requires_grad_(), theta_t.clone().requires_grad_()))


@pytest.mark.parametrize("C", [5, 40, 300])
@pytest.mark.parametrize("extreme", [False, True])
def test_learnable_matches_autograd_through_the_reference(C, extreme):
    """Against log_softmax(theta_t, dim=0) and the reference in float64; logits of +-120 send rows down the
    log-space path."""
    logits, target, _, _ = _inputs("cpu", torch.float64, B=80, C=C, seed=C)
    if extreme:
        logits = 120 * logits.sign()
    weight, _ = _extras(C, torch.float64, "cpu")
    theta_t = _theta_t(C)
    row_grad = torch.rand(80, dtype=torch.float64)
    for reduction, rg in ((MEAN, None), (SUM, None), (NONE, row_grad)):
        red = {NONE: "none", MEAN: "mean", SUM: "sum"}[reduction]
        h, th = logits.clone().requires_grad_(), theta_t.clone().requires_grad_()
        rows = _reference.forward_corrected_ce(h, target, torch.log_softmax(th, dim=0), -100, weight)
        expected = _reference.reduce(rows, target, red, -100, weight)
        expected_sum = (expected * rg).sum() if rg is not None else expected
        grad_h, grad_th = torch.autograd.grad(expected_sum, (h, th))
        loss, grad, gth = ops._forward_corrected_ce_learnable(logits, target, theta_t, -100, reduction, weight, rg)
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(grad, grad_h, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gth, grad_th, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("C", [40, 2100])  # T's softmax: 3 blocks of rows; 32 blocks of 5 chunks (4 in the last)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_learnable_T_softmax_over_blocks_and_chunks_of_rows(C, dtype):
    """Rows of T whose maximum sits in a late block or chunk, far above the rest (a sum taken at an early
    maximum would underflow, one rescaled wrongly would be off), or below everything else, or whose only
    finite logits, all far below 0, follow a chunk of -inf ones; and rows with a NaN, a +inf or only -inf,
    whose T is NaN as log_softmax gives. Against log_softmax and the reference."""
    logits, target, _, _ = _inputs("cpu", dtype, B=30, C=C, seed=3)
    theta = torch.randn(C, C, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    low = -700.0 if dtype == torch.float64 else -90.0  # exp(low) underflows to 0 or subnormals
    theta[1] = low
    theta[1, C - 2] = 5.0  # the maximum in the last block
    theta[2] = low
    theta[2, C // 2] = 3.0  # in a middle block
    theta[3, 0] = -1e4  # far below the rest, in the first chunk
    theta[4] = -float("inf")  # -inf up to a chunk, inside a block, of logits whose exps would underflow from 0
    theta[4, C // 2:C // 2 + 3] = torch.tensor([-30.0, -40.0, -50.0], dtype=torch.float64) + 2 * low
    expected = {}
    for name, row in (("nan", float("nan")), ("inf", float("inf")), ("empty", -float("inf"))):
        t = theta.clone()
        if name == "empty":
            t[5] = row
        else:
            t[5, C // 3] = row
        expected[name] = t
    for th in (theta, *expected.values()):
        theta_t = th.t().contiguous().to(dtype)
        th64 = theta_t.double().clone().requires_grad_()
        h = logits.double().clone().requires_grad_()
        rows = _reference.forward_corrected_ce(h, target, torch.log_softmax(th64, dim=0), -100, None)
        loss_ref = _reference.reduce(rows, target, "sum", -100, None)
        loss, grad, gth = ops._forward_corrected_ce_learnable(logits, target, theta_t, -100, SUM, None, None)
        if th is theta:
            grad_h, grad_th = torch.autograd.grad(loss_ref, (h, th64))
            tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-5)
            torch.testing.assert_close(loss, loss_ref.detach().to(dtype), **tol)
            torch.testing.assert_close(grad, grad_h.to(dtype), **tol)
            torch.testing.assert_close(gth, grad_th.to(dtype), **tol)
        else:  # T's row 5 is NaN: so is every row's loss and gradient, but for the ignored row's 0
            kept = target != -100
            assert loss_ref.isnan() and loss.isnan()
            assert grad[kept].isnan().all() and (grad[~kept] == 0).all() and gth.isnan().all()


def test_learnable_with_no_classes_returns_what_cross_entropy_does():
    """C = 0 (every target ignored): per-row losses 0 and empty gradients, as F.cross_entropy; no crash."""
    logits, target = torch.zeros(2, 0), torch.full((2,), -100)
    loss, grad, gth = ops._forward_corrected_ce_learnable(logits, target, torch.zeros(0, 0), -100, NONE, None, None)
    assert torch.equal(loss, F.cross_entropy(logits, target, reduction="none"))
    assert grad.shape == (2, 0) and gth.shape == (0, 0)


@pytest.mark.parametrize("B", [3000, 200])  # C <= B, and C > B: most classes without a row
def test_learnable_has_the_same_bits_for_any_number_of_threads(B):
    logits, target, _, _ = _inputs("cpu", torch.float32, B=B, C=700, seed=5)
    theta_t = _theta_t(700, torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(ops._forward_corrected_ce_learnable(logits, target, theta_t, -100, MEAN, None, None))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("C", [5, 40])  # tiles of rows, and row by row
def test_kernels_with_weights_and_offset_match_reference(device, C):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64, B=37, C=C, seed=C)
    weight, offset = _extras(C, torch.float64, device)
    for reduction in (NONE, MEAN, SUM):
        red = {NONE: "none", MEAN: "mean", SUM: "sum"}[reduction]
        for op, ref, table, kw in (
            (ops._forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, dict(weight=weight)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(weight=weight, offset=offset)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(weight=weight)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(offset=offset)),
        ):
            h = logits.clone().requires_grad_()
            expected = _reference.reduce(ref(h, target, table, -100, **kw), target, red, -100, kw.get("weight"))
            (expected_grad,) = torch.autograd.grad(expected.sum(), h)
            loss, grad = op(logits, target, table, -100, reduction, **kw)
            torch.testing.assert_close(loss, expected.detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_forward_kernel_with_the_T_t_cache_matches_the_one_without():
    """T_t = exp(log_T_t) given or not: the same loss (the one-exp path is exact to round-off), at any B, C."""
    for B, C in ((3, 40), (64, 40), (5, 7), (300, 100)):
        logits, target, log_T_t, _ = _inputs("cpu", torch.float64, B=B, C=C, seed=B)
        with_cache = ops._forward_corrected_ce(logits, target, log_T_t, -100, NONE, T_t=log_T_t.exp())
        without = ops._forward_corrected_ce(logits, target, log_T_t, -100, NONE)
        for a, b in zip(with_cache, without):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("wrt_log", [True, False])
@pytest.mark.parametrize("C", [5, 300])
def test_table_gradient_has_the_same_bits_for_any_number_of_threads(wrt_log, C):
    """Rows are grouped by target class and each class's rows added in row order by one thread."""
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32, B=2000, C=C, seed=7)
    weight, _ = _extras(C, torch.float32, "cpu")
    T_t = log_T_t.exp()
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(ops._forward_corrected_ce_table_grad(logits, target, log_T_t, -100, MEAN, T_t, weight, None,
                                                                 wrt_log))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("wrt_log", [True, False])
def test_table_gradient_matches_autograd_through_the_reference(wrt_log):
    logits, target, log_T_t, _ = _inputs("cpu", torch.float64, B=50, C=6, seed=3)
    weight, _ = _extras(6, torch.float64, "cpu")
    row_grad = torch.rand(50, dtype=torch.float64)
    T = log_T_t.exp().t().contiguous()
    for reduction, rg in ((MEAN, None), (SUM, None), (NONE, row_grad)):
        red = {NONE: "none", MEAN: "mean", SUM: "sum"}[reduction]
        table = (log_T_t if wrt_log else T).clone().requires_grad_()
        h = logits.clone().requires_grad_()
        if wrt_log:
            rows = _reference.forward_corrected_ce(h, target, table, -100, weight)
        else:
            rows = _reference.forward_corrected_ce_T(h, target, table, -100, weight)
        expected = _reference.reduce(rows, target, red, -100, weight)
        expected = (expected * rg).sum() if rg is not None else expected
        grad_h, grad_table = torch.autograd.grad(expected, (h, table))
        loss, grad, gt = ops._forward_corrected_ce_table_grad(logits, target, log_T_t, -100, reduction, None, weight, rg,
                                                              wrt_log)
        torch.testing.assert_close(grad, grad_h, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gt, grad_table if wrt_log else grad_table.t(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("C", [5, 40])  # tiles of rows, and row by row
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_on_non_finite_logits(C, dtype):
    """-inf off the target (a masked class): the limit of the formula, finite here; +inf or NaN anywhere in a
    row, or a row of -inf only: NaN loss and gradient, as F.cross_entropy. Other rows are untouched."""
    inf, nan = float("inf"), float("nan")
    g = torch.Generator().manual_seed(C)
    logits = torch.randn(32, C, generator=g, dtype=torch.float64).to(dtype)
    target = torch.randint(1, C, (32,), generator=g)
    logits[0, 0] = -inf           # masked non-target
    logits[1, 0] = inf
    logits[2, 0] = nan
    logits[3] = -inf              # all masked
    I = torch.eye(C, dtype=dtype)
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    log_I, I_t = I.log().to(table_dtype), I.to(table_dtype)
    expected = F.cross_entropy(logits.double(), target, reduction="none")
    for op, table, kw in ((ops._forward_corrected_ce, log_I, {}), (ops._forward_corrected_ce, log_I, dict(T_t=I_t)),
                          (ops._backward_corrected_ce, I_t, {})):
        loss, grad = op(logits, target, table, -100, NONE, **kw)
        assert torch.isfinite(loss[0]) and torch.isfinite(grad[0]).all()
        torch.testing.assert_close(loss[0].double(), expected[0], rtol=1e-5, atol=1e-5)
        assert grad[0, 0] == 0
        for row in (1, 2, 3):
            assert torch.isnan(loss[row]) and torch.isnan(grad[row]).all(), (op, row)
        assert torch.isfinite(loss[4:]).all() and torch.isfinite(grad[4:]).all()


# --- K-dimensional logits (N, C, S): the CPU kernels read that layout as it lies --------------------------


def _kdim_inputs(N, C, S, dtype=torch.float64, seed=0, extreme=False):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(N, C, S, generator=g, dtype=torch.float64)
    if extreme:  # +-120 with zeros in T: positions whose sum_j T[j, y] e_j underflows take the log-space path
        logits = 120 * torch.sign(logits)
    target = torch.randint(0, C, (N, S), generator=g)
    target.view(-1)[::7] = -100
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C / 4 * torch.eye(C, dtype=torch.float64)
    T[torch.rand(C, C, generator=g) < 0.4] = 0
    T.fill_diagonal_(1.0)
    T /= T.sum(dim=1, keepdim=True)
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return logits.to(dtype), target, T.log().t().contiguous().to(table_dtype), torch.linalg.inv(T).to(table_dtype).contiguous()


def _as_rows(logits, target):
    return logits.movedim(1, -1).reshape(-1, logits.shape[1]), target.reshape(-1)


@pytest.mark.parametrize("S", [5, 16, 37])  # partial chunk, full chunks (float32: 16 lanes), both
@pytest.mark.parametrize("C", [5, 40])
@pytest.mark.parametrize("extreme", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kdim_kernels_match_the_reference_on_rows(S, C, extreme, dtype):
    logits, target, log_T_t, T_inv = _kdim_inputs(3, C, S, dtype, seed=S + C, extreme=extreme)
    weight, offset = _extras(C, log_T_t.dtype, "cpu")
    rows, row_target = _as_rows(logits, target)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    for reduction in (NONE, MEAN, SUM):
        red = {NONE: "none", MEAN: "mean", SUM: "sum"}[reduction]
        for op, ref, table, kw in (
            (ops._forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, dict(weight=weight)),
            (ops._forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, dict(T_t=log_T_t.exp())),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(weight=weight, offset=offset)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(weight=weight)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, dict(offset=offset)),
            (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, {}),
        ):
            h = rows.double().requires_grad_()
            ref_kw = {k: v for k, v in kw.items() if k != "T_t"}
            expected = _reference.reduce(ref(h, row_target, table.double(), -100, **ref_kw), row_target, red, -100,
                                         ref_kw.get("weight"))
            (expected_grad,) = torch.autograd.grad(expected.sum(), h)
            loss, grad = op(logits, target, table, -100, reduction, **kw)
            assert grad.shape == logits.shape and loss.shape == (target.shape if reduction == NONE else ())
            # losses reach 120 |T^-1| with +-120 logits, and float32 loses digits to T^-1's cancellations
            scale = (120 if extreme else 1) * (table.abs().sum(1).max().item() if table is T_inv else 1)
            torch.testing.assert_close(loss.double(), expected.detach().reshape(loss.shape),
                                       rtol=tol["rtol"], atol=tol["atol"] * scale)
            torch.testing.assert_close(grad.double().movedim(1, -1).reshape(-1, C), expected_grad,
                                       rtol=tol["rtol"], atol=tol["atol"] * (scale if dtype == torch.float32 else 1))


def test_kdim_kernels_on_ignored_and_non_finite_positions():
    inf, nan = float("inf"), float("nan")
    logits, target, _, _ = _kdim_inputs(2, 6, 20, torch.float32)
    I = torch.eye(6)  # T = I: the masked class's limit is finite for both corrections
    log_T_t, T_inv = I.log(), I
    target[:] = 1
    target[0, 3] = -100
    logits[0, 0, 4] = -inf  # masked non-target class
    logits[0, 2, 5] = inf
    logits[1, 4, 6] = nan
    logits[1, :, 7] = -inf
    for op, table in ((ops._forward_corrected_ce, log_T_t), (ops._backward_corrected_ce, T_inv)):
        loss, grad = op(logits, target, table, -100, NONE)
        assert loss[0, 3] == 0 and (grad[0, :, 3] == 0).all()
        assert torch.isfinite(loss[0, 4]) and torch.isfinite(grad[0, :, 4]).all() and grad[0, 0, 4] == 0
        for n, s in ((0, 5), (1, 6), (1, 7)):
            assert torch.isnan(loss[n, s]) and torch.isnan(grad[n, :, s]).all()
        finite = torch.ones_like(loss, dtype=torch.bool)
        finite[0, 5] = finite[1, 6] = finite[1, 7] = False
        assert torch.isfinite(loss[finite]).all()


@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_kdim_opcheck_and_gradcheck(reduction):
    logits, target, log_T_t, T_inv = _kdim_inputs(2, 4, 5)
    weight, offset = _extras(4, torch.float64, "cpu")
    h = logits.clone().requires_grad_()
    torch.library.opcheck(ops.forward_corrected_ce, (h, target, log_T_t, -100, reduction), dict(weight=weight))
    torch.library.opcheck(ops.backward_corrected_ce, (h, target, T_inv, -100, reduction), dict(offset=offset))
    assert torch.autograd.gradcheck(lambda h: ops.forward_corrected_ce(h, target, log_T_t, -100, reduction, weight=weight), (h,))
    assert torch.autograd.gradcheck(lambda h: ops.backward_corrected_ce(h, target, T_inv, -100, reduction, offset=offset), (h,))
