"""The custom ops torch.ops.pyrobust.*: registration, opcheck, autograd, compile, autocast, fallback."""

import warnings

import pytest
import torch

import pyrobust
from pyrobust import _ops, _reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
ops = torch.ops.pyrobust


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
def test_opcheck(device, dtype):
    logits, target, log_T_t, T_inv = _inputs(device, dtype)
    logits.requires_grad_()
    torch.library.opcheck(ops.forward_corrected_ce, (logits, target, log_T_t, -100))
    torch.library.opcheck(ops.backward_corrected_ce, (logits, target, T_inv, -100))
    grad_loss = torch.rand(logits.shape[0], dtype=logits.dtype, device=device)
    torch.library.opcheck(ops.scale_grad, (logits.detach(), grad_loss))


@pytest.mark.parametrize("device", DEVICES)
def test_ops_match_reference_and_return_their_gradient(device):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    for op, ref, table in (
        (ops.forward_corrected_ce, _reference.forward_corrected_ce, log_T_t),
        (ops.backward_corrected_ce, _reference.backward_corrected_ce, T_inv),
    ):
        loss, grad = op(logits, target, table, -100)
        h = logits.clone().requires_grad_()
        expected = ref(h, target, table, -100)
        (expected_grad,) = torch.autograd.grad(expected.sum(), h)
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
        assert loss[1] == 0 and (grad[1] == 0).all()  # ignore_index row
        assert loss.dtype == torch.float64 and grad.dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float64)
    logits.requires_grad_()
    for op, table in ((ops.forward_corrected_ce, log_T_t), (ops.backward_corrected_ce, T_inv)):
        assert torch.autograd.gradcheck(lambda h: op(h, target, table, -100)[0], (logits,))


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_raises(device):
    logits, target, log_T_t, _ = _inputs(device, torch.float64)
    logits.requires_grad_()
    loss, _ = ops.forward_corrected_ce(logits, target, log_T_t, -100)
    with pytest.raises(RuntimeError, match="differentiable once; double backward"):
        torch.autograd.grad(loss.sum(), logits, create_graph=True)


def test_gradient_with_respect_to_table_raises_rather_than_vanishing():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float64)
    log_T_t.requires_grad_()
    with pytest.raises(RuntimeError, match="do not differentiate with respect to T"):
        ops.forward_corrected_ce(logits.requires_grad_(), target, log_T_t, -100)


def test_scale_grad_multiplies_rows():
    grad = torch.randn(4, 3, dtype=torch.float64)
    grad_loss = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(ops.scale_grad(grad, grad_loss), grad * grad_loss[:, None], rtol=0, atol=0)
    # the gradient of a "mean" arrives as an expanded scalar
    torch.testing.assert_close(ops.scale_grad(grad, torch.tensor(0.25, dtype=torch.float64).expand(4)), grad / 4)


def test_target_out_of_range_is_an_error():
    logits, target, log_T_t, T_inv = _inputs("cpu", torch.float32)
    target[3] = 5
    with pytest.raises(RuntimeError, match=r"target\[3\] = 5 is out of range for 5 classes"):
        ops.forward_corrected_ce(logits, target, log_T_t, -100)
    target[3] = -1
    with pytest.raises(RuntimeError, match=r"target\[3\] = -1 is out of range"):
        ops.backward_corrected_ce(logits, target, T_inv, -100)


def test_table_shape_and_dtype_are_checked():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    with pytest.raises(RuntimeError, match="log_T_t must be 5 x 5"):
        ops.forward_corrected_ce(logits, target, log_T_t[:4, :4], -100)
    with pytest.raises(RuntimeError, match="log_T_t must be Float for Float logits, got Double"):
        ops.forward_corrected_ce(logits, target, log_T_t.double(), -100)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    logits, target, log_T_t, T_inv = _inputs(device, torch.float32)

    def f(h):
        return ops.forward_corrected_ce(h, target, log_T_t, -100)[0].sum() + ops.backward_corrected_ce(
            h, target, T_inv, -100
        )[0].mean()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    h1, h2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    f(h1).backward()
    compiled(h2).backward()
    torch.testing.assert_close(h2.grad, h1.grad)


def test_autocast_cpu_runs_in_float32():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float32)
    h_bf16 = logits.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, grad = ops.forward_corrected_ce(h_bf16, target, log_T_t, -100)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    expected, _ = ops.forward_corrected_ce(h_bf16.detach().float(), target, log_T_t, -100)
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
    if torch._C._dispatch_has_kernel_for_dispatch_key("pyrobust::forward_corrected_ce", "CUDA"):
        assert _ops.backend("cuda") == "cuda"
    else:
        with pytest.warns(RuntimeWarning, match="CUDA kernels not compiled into this build"):
            assert _ops.backend("cuda") == "reference"


def test_grad_output_is_not_differentiable():
    logits, target, log_T_t, _ = _inputs("cpu", torch.float64)
    _, grad = ops.forward_corrected_ce(logits.requires_grad_(), target, log_T_t, -100)
    assert not grad.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        grad.sum().backward()


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
    loss, grad = ops.forward_corrected_ce(logits, target, T.log().t().contiguous().to(table_dtype), -100)
    assert torch.isinf(loss[[2, 8]]).all() and torch.isfinite(loss[[0, 1, 3, 4, 5, 6, 7]]).all()
    assert torch.isnan(grad[[2, 8]]).all() and torch.isfinite(grad[[0, 1, 3, 4, 5, 6, 7]]).all()
