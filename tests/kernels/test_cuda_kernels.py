"""Every launch path of the CUDA kernels (kernels/cuda/corrected_ce_kernels.cu) against the reference.

The device-parametrised tests (tests/kernels/test_ops.py, tests/losses/) check the ops' contract on small
inputs; the CUDA kernels pick one of several shapes by C, dtype and alignment (a warp per row caching
1-8 vectors per lane, a block per row with or without an uncached tail; 16-byte or scalar accesses), and
each of those is a separate compiled kernel. The class counts below reach every one of them. Run under
compute-sanitizer by benchmarks/gpu_check.sh; skipped without a GPU.
"""

from __future__ import annotations

import pytest
import torch

import pyrobust  # noqa: F401  (registers torch.ops.pyrobust)
from pyrobust import _reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
ops = torch.ops.pyrobust

# float32 (4 per 16-byte vector): 10, 37 scalar warp; 100, 256, 1000, 1024 vector warp (1, 2, 8, 8 vectors
# a lane); 1500 vector block; 2047 scalar block; 20000 vector block with a tail re-read in pass 2.
# fp16/bf16 (8 per vector): 100, 1500, 2047 scalar; 256, 1000, 1024 vector warp; 20000 block with a tail.
# float64 is scalar only: 10-256 warp, beyond block, 20000 with a tail.
CLASSES = [10, 37, 100, 256, 1000, 1024, 1500, 2047, 20000]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# (loss rtol, loss atol, grad rtol, grad atol): 16-bit gradients are rounded to their type once.
TOLERANCE = {
    torch.float64: (1e-10, 1e-12, 1e-10, 1e-12),
    torch.float32: (1e-5, 3e-5, 1e-5, 1e-6),
    torch.float16: (1e-5, 3e-5, 1e-3, 1e-6),
    torch.bfloat16: (1e-5, 3e-5, 8e-3, 1e-6),
}


def _inputs(C, dtype, *, B=48, misaligned=False, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    table_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    logits = (torch.randn(B, C, device="cuda", generator=g, dtype=torch.float64) * 4).to(dtype)
    if misaligned:  # a contiguous view one element into its storage: no 16-byte accesses
        storage = torch.empty(B * C + 1, device="cuda", dtype=dtype)
        storage[1:] = logits.flatten()
        logits = storage[1:].view(B, C)
    target = torch.randint(0, C, (B,), device="cuda", generator=g)
    target[::7] = -100
    # Any table will do: the kernels read row y and the reference uses the same values. Entries of
    # -inf in log_T_t are the zeros of T.
    log_T_t = torch.rand(C, C, device="cuda", generator=g, dtype=table_dtype).log()
    log_T_t[torch.rand(C, C, device="cuda", generator=g) < 0.3] = -torch.inf
    log_T_t.diagonal().zero_()
    T_inv = torch.randn(C, C, device="cuda", generator=g, dtype=table_dtype) / C + torch.eye(
        C, device="cuda", dtype=table_dtype
    )
    return logits, target, log_T_t, T_inv


def _reduced_reference(ref, h, target, table, reduction):
    """The reference loss in float64, reduced as the ops' codes say: 0 none, 1 mean over rows not ignored, 2 sum."""
    loss = ref(h, target, table.double(), -100)
    if reduction == 1:
        return loss.sum() / (target != -100).sum()
    return loss.sum() if reduction == 2 else loss


def _check(op, ref, logits, target, table, dtype, reduction=0):
    """reduction 0 (none), 1 (mean: the kernel scales the gradient by 1 / rows not ignored) or 2 (sum)."""
    loss, grad = op(logits, target, table, -100, reduction)
    h = logits.double().requires_grad_()
    expected = _reduced_reference(ref, h, target, table, reduction)
    (expected_grad,) = torch.autograd.grad(expected.sum(), h)
    loss_rtol, loss_atol, grad_rtol, grad_atol = TOLERANCE[dtype]
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert grad.dtype == dtype and grad.shape == logits.shape
    torch.testing.assert_close(loss.double(), expected, rtol=loss_rtol, atol=loss_atol)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=grad_rtol, atol=grad_atol)
    ignored = target == -100
    assert (grad[ignored] == 0).all() and (reduction != 0 or (loss[ignored] == 0).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("C", CLASSES)
def test_cuda_launch_paths_match_reference(C, dtype):
    logits, target, log_T_t, T_inv = _inputs(C, dtype, seed=C)
    _check(ops._forward_corrected_ce, _reference.forward_corrected_ce, logits, target, log_T_t, dtype)
    _check(ops._backward_corrected_ce, _reference.backward_corrected_ce, logits, target, T_inv, dtype)


@pytest.mark.parametrize("reduction", [1, 2], ids=["mean", "sum"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("C", [10, 1000, 2047, 20000])  # scalar and vector warp, scalar block, block with a tail
def test_cuda_reduced_losses_are_reduced_and_scaled_in_the_kernel(C, dtype, reduction):
    logits, target, log_T_t, T_inv = _inputs(C, dtype, seed=C + 2)
    _check(ops._forward_corrected_ce, _reference.forward_corrected_ce, logits, target, log_T_t, dtype, reduction)
    _check(ops._backward_corrected_ce, _reference.backward_corrected_ce, logits, target, T_inv, dtype, reduction)


# Many blocks, so that the block that finishes last sums several partial sums per thread: 20,000 rows at
# C = 10 are 2,500 blocks of 8 warps (256 threads add them); 1,200 rows at C = 1,500 are 1,200 one-row
# blocks (512 threads add them).
@pytest.mark.parametrize("B, C", [(20_000, 10), (1_200, 1_500)])
def test_cuda_reduction_over_many_blocks_is_exact_and_reproducible(B, C):
    logits, target, log_T_t, _ = _inputs(C, torch.float32, B=B, seed=B)
    rows, rows_grad = ops._forward_corrected_ce(logits, target, log_T_t, -100, 0)
    for reduction, count in ((2, 1), (1, int((target != -100).sum()))):
        loss, grad = ops._forward_corrected_ce(logits, target, log_T_t, -100, reduction)
        # the same per-row losses as reduction "none", added in float64
        torch.testing.assert_close(loss.double(), rows.double().sum() / count, rtol=1e-6, atol=0)
        torch.testing.assert_close(grad, rows_grad / count, rtol=1e-6, atol=1e-12)
        again, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, reduction)
        assert torch.equal(again, loss)  # a fixed order of additions: the same bits every run
        h = logits.double().requires_grad_()
        expected = _reduced_reference(_reference.forward_corrected_ce, h, target, log_T_t, reduction)
        torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("B", [0, 5])
def test_cuda_reduced_loss_of_no_rows_is_nan_for_a_mean_and_zero_for_a_sum(B):
    logits, _, log_T_t, T_inv = _inputs(100, torch.float32, B=max(B, 1))
    logits, target = logits[:B].contiguous(), torch.full((B,), -100, device="cuda")
    for op, table in ((ops._forward_corrected_ce, log_T_t), (ops._backward_corrected_ce, T_inv)):
        mean, grad = op(logits, target, table, -100, 1)
        total, _ = op(logits, target, table, -100, 2)
        assert mean.shape == () and torch.isnan(mean) and total.item() == 0.0
        assert grad.shape == (B, 100) and (grad == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("C", [256, 1024, 20000])
def test_cuda_misaligned_logits_take_the_scalar_path(C, dtype):
    logits, target, log_T_t, T_inv = _inputs(C, dtype, misaligned=True, seed=C + 1)
    assert logits.is_contiguous() and logits.data_ptr() % 16 != 0
    _check(ops._forward_corrected_ce, _reference.forward_corrected_ce, logits, target, log_T_t, dtype)
    _check(ops._backward_corrected_ce, _reference.backward_corrected_ce, logits, target, T_inv, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("C", [10, 1024, 2047])
def test_cuda_scale_grad_multiplies_each_row(C, dtype):
    g = torch.Generator(device="cuda").manual_seed(C)
    grad = torch.randn(33, C, device="cuda", generator=g).to(dtype)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    grad_loss = torch.randn(33, device="cuda", generator=g, dtype=acc)
    expected = (grad.to(acc) * grad_loss[:, None]).to(dtype)
    torch.testing.assert_close(ops.scale_grad(grad, grad_loss), expected, rtol=0, atol=0)
    # the gradient of a "mean" reduction arrives as an expanded scalar
    mean = torch.tensor(0.25, device="cuda", dtype=acc).expand(33)
    torch.testing.assert_close(ops.scale_grad(grad, mean), (grad.to(acc) / 4).to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(33, 10), (33, 1024), (33, 2047), (5, 3)])  # 16-byte packs and scalars
def test_cuda_scale_grad_in_place_multiplies_and_leaves_the_buffer_alone_at_one(shape, dtype):
    g = torch.Generator(device="cuda").manual_seed(shape[1])
    grad = torch.randn(*shape, device="cuda", generator=g).to(dtype)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    expected = (grad.to(acc) * -0.75).to(dtype)
    ops.scale_grad_(grad, torch.tensor(-0.75, device="cuda", dtype=acc))
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)
    before = grad.clone()
    ops.scale_grad_(grad, torch.tensor(1.0, device="cuda", dtype=acc))
    assert torch.equal(grad, before)
    # a view one element into its storage: no 16-byte accesses
    storage = torch.zeros(grad.numel() + 1, device="cuda", dtype=dtype)
    view = storage[1:].view(shape)
    view.copy_(before)
    ops.scale_grad_(view, torch.tensor(2.0, device="cuda", dtype=acc))
    torch.testing.assert_close(view, (before.to(acc) * 2).to(dtype), rtol=0, atol=0)
    assert storage[0] == 0


def test_cuda_kernels_run_on_the_current_stream_and_device():
    logits, target, log_T_t, _ = _inputs(100, torch.float32)
    expected, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, 0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        loss, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, 0)
        # Only enqueued on `stream`: graph capture would fail if the op synchronised or used another one.
    torch.cuda.current_stream().wait_stream(stream)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)

    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        ops._forward_corrected_ce(logits, target, log_T_t, -100, 0)  # warm-up outside the capture
        ops._forward_corrected_ce(logits, target, log_T_t, -100, 1)
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        captured, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, 0)
        captured_mean, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, 1)
    expected_mean, _ = ops._forward_corrected_ce(logits, target, log_T_t, -100, 1)
    for _ in range(2):  # each replay starts the reduction afresh
        captured_mean.fill_(0)
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(captured, expected, rtol=0, atol=0)
        torch.testing.assert_close(captured_mean, expected_mean, rtol=0, atol=0)
