"""The CPU kernels' run-time instruction-set dispatch (kernels/cpu/dispatch.cpp): one build per capability
(default, avx2, avx512), the best the CPU supports chosen at load unless PYROBUST_CPU_CAPABILITY says
otherwise, a clear error (never SIGILL) for a value that is unknown or that the CPU lacks, and every build
this CPU can run checked against the float64 reference on every path of the kernels (tiles of few classes,
row by row, one-exp and log-space rows, K-dimensional chunks, the table gradient, a learnable T)."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyrobust
from pyrobust import _ops, _reference

ops = torch.ops.pyrobust
NONE, MEAN, SUM = 0, 1, 2  # at::Reduction
REDUCTIONS = {NONE: "none", MEAN: "mean", SUM: "sum"}
ROOT = Path(__file__).resolve().parents[2]
ALL = ("default", "avx2", "avx512")
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

pytestmark = pytest.mark.skipif(not _ops.available(), reason="the compiled extension is not built")


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags as the kernel reports them (Linux), or None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def _supported() -> list[str]:
    """The capabilities this CPU runs, from /proc/cpuinfo: what the dispatcher must find by CPUID."""
    flags = _cpu_flags()
    if not X86 or flags is None:
        return ["default"]
    caps = ["default"]
    if {"avx2", "fma"} <= flags:
        caps.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            caps.append("avx512")
    return caps


SUPPORTED = _supported()


@pytest.fixture(params=ALL)
def capability(request):
    """Runs the test under the kernels of each capability this CPU supports, then restores the automatic
    choice."""
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU lacks {request.param}")
    before = _ops._use_cpu_kernels(request.param)
    assert _ops.cpu_capability() == request.param
    yield request.param
    _ops._use_cpu_kernels(before or SUPPORTED[-1])


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PYROBUST_CPU_CAPABILITY"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT,
                          timeout=300, check=False)


# --- the choice ------------------------------------------------------------------------------------------


@pytest.mark.skipif(_cpu_flags() is None, reason="no /proc/cpuinfo to compare with")
def test_load_picks_the_best_capability_of_this_cpu():
    run = _python("import torch, pyrobust._ops as o; print(o.cpu_capability())")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == SUPPORTED[-1]


def test_every_capability_is_built_for_this_architecture():
    """setup.py builds one library per capability next to pyrobust._C, with its suffix."""
    extension = Path(_ops._C.__file__)
    suffix = extension.name.removeprefix("_C")
    built = {p.name.removesuffix(suffix) for p in extension.parent.glob(f"_cpu_*{suffix}")}
    assert built == {f"_cpu_{c}" for c in (ALL if X86 else ("default",))}


@pytest.mark.parametrize("requested", ALL)
def test_environment_override_is_obeyed_or_refused_clearly(requested):
    code = (
        "import torch, pyrobust._ops as o\n"
        "h = torch.randn(8, 5); y = torch.randint(0, 5, (8,)); T = torch.eye(5)\n"
        "try:\n"
        "    print(o.cpu_capability())\n"
        "except RuntimeError as e:\n"
        "    print('error:', str(e).splitlines()[0])\n"
        "try:\n"
        "    torch.ops.pyrobust.backward_corrected_ce(h, y, T)\n"
        "    print('ran')\n"
        "except RuntimeError as e:\n"
        "    print('error:', str(e).splitlines()[0])\n"
    )
    value = requested.upper() if requested == "avx2" else requested  # any case, as ATEN_CPU_CAPABILITY
    run = _python(code, PYROBUST_CPU_CAPABILITY=value)
    assert run.returncode == 0, run.stderr  # a SIGILL would be -4
    if requested in SUPPORTED:
        assert run.stdout.split() == [requested, "ran"]
    else:
        message = (f"error: pyrobust: PYROBUST_CPU_CAPABILITY={value} asks for instructions this CPU lacks; "
                   f"it supports {', '.join(SUPPORTED)}")
        assert run.stdout.splitlines() == [message, message]


def test_unknown_override_is_an_error_naming_the_value_and_what_is_supported():
    run = _python("import torch, pyrobust; import pyrobust._ops as o; print(pyrobust.backend('cpu')); "
                  "o.cpu_capability()", PYROBUST_CPU_CAPABILITY="sse9")
    assert run.returncode == 1 and run.stdout.strip() == "cpp"
    assert (f"RuntimeError: pyrobust: PYROBUST_CPU_CAPABILITY=sse9 is not a CPU capability: use default, avx2 or "
            f"avx512 (this CPU supports {', '.join(SUPPORTED)})") in run.stderr


def test_switching_checks_the_name_like_the_environment():
    with pytest.raises(RuntimeError, match="capability=avx3 is not a CPU capability"):
        _ops._use_cpu_kernels("avx3")
    for lacking in set(ALL) - set(SUPPORTED):
        with pytest.raises(RuntimeError, match=f"{lacking} asks for instructions this CPU lacks"):
            _ops._use_cpu_kernels(lacking)
    with pytest.raises(RuntimeError, match="cannot load the CPU kernels /nonexistent.so"):
        _ops._use_cpu_kernels("native", "/nonexistent.so")
    assert _ops.cpu_capability() == SUPPORTED[-1]  # a refused switch changes nothing


def test_backend_names_the_compiled_kernels():
    assert pyrobust.backend("cpu") == "cpp" and _ops.cpu_capability() in SUPPORTED


# --- every build against the float64 reference ---------------------------------------------------------


def _inputs(B, C, dtype, seed, extreme=False, zeros=False):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(B, C, generator=g, dtype=torch.float64)
    if extreme:  # +-120 with zeros in T: rows whose sum_j T[j, y] e_j underflows take the log-space path
        logits = 120 * logits.sign()
    target = torch.randint(0, C, (B,), generator=g)
    target[::7] = -100
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C / 4 * torch.eye(C, dtype=torch.float64)
    if zeros:
        T[torch.rand(C, C, generator=g) < 0.4] = 0
        T.fill_diagonal_(1.0)
    T /= T.sum(dim=1, keepdim=True)
    weight = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    offset = torch.randn(C, generator=g, dtype=torch.float64) / C
    table = torch.float64 if dtype == torch.float64 else torch.float32
    tables = [T.log().t().contiguous(), torch.linalg.inv(T).contiguous(), weight, offset]
    return logits.to(dtype), target, *(t.to(table) for t in tables)


def _tol(dtype, scale=1.0):
    return {"rtol": 1e-10, "atol": 1e-10 * scale} if dtype == torch.float64 else {"rtol": 3e-5, "atol": 3e-5 * scale}


@pytest.mark.parametrize("B, C", [(37, 5), (37, 40), (9, 300)])  # tiles of rows, row by row, C > B (no T_t)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("extreme", [False, True])
def test_losses_and_gradients_match_the_reference(capability, B, C, dtype, extreme):
    logits, target, log_T_t, T_inv, weight, offset = _inputs(B, C, dtype, seed=B + C, extreme=extreme,
                                                              zeros=extreme)
    rows = logits.double()
    scale = 120 if extreme else 1
    for reduction, red in REDUCTIONS.items():
        for op, ref, table, kw in (
            (ops.forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, {}),
            (ops.forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, {"weight": weight}),
            (ops.forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, {"T_t": log_T_t.exp()}),
            (ops.backward_corrected_ce, _reference.backward_corrected_ce, T_inv, {}),
            (ops.backward_corrected_ce, _reference.backward_corrected_ce, T_inv, {"weight": weight, "offset": offset}),
        ):
            h = rows.clone().requires_grad_()
            ref_kw = {k: v.double() for k, v in kw.items() if k != "T_t"}
            expected = _reference.reduce(ref(h, target, table.double(), -100, **ref_kw), target, red, -100,
                                         ref_kw.get("weight"))
            (expected_grad,) = torch.autograd.grad(expected.sum(), h)
            x = logits.clone().requires_grad_()
            loss = op(x, target, table, -100, reduction, **kw)
            loss.sum().backward()  # the op's own autograd: the kernel's saved gradient, scaled
            # float32 loses digits to T^-1's cancellations and to +-120 logits
            bound = scale * (T_inv.abs().sum(1).max().item() if table is T_inv else 1)
            torch.testing.assert_close(loss.double(), expected.detach(), **_tol(dtype, bound))
            torch.testing.assert_close(x.grad.double(), expected_grad, **_tol(dtype, bound))


@pytest.mark.parametrize("S", [5, 37])  # a partial chunk of positions; full chunks and a partial one
@pytest.mark.parametrize("C", [5, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_k_dimensional_logits_match_the_reference(capability, S, C, dtype):
    flat, flat_target, log_T_t, T_inv, weight, offset = _inputs(3 * S, C, dtype, seed=S + C, extreme=True, zeros=True)
    flat[::5] /= 60  # extreme rows take the log-space path, the others the one-exp path
    logits, target = flat.reshape(3, S, C).movedim(-1, 1).contiguous(), flat_target.reshape(3, S)
    for op, ref, table, kw in (
        (ops._forward_corrected_ce, _reference.forward_corrected_ce, log_T_t, {"weight": weight}),
        (ops._backward_corrected_ce, _reference.backward_corrected_ce, T_inv, {"weight": weight, "offset": offset}),
    ):
        h = flat.double().requires_grad_()
        expected = ref(h, flat_target, table.double(), -100, **{k: v.double() for k, v in kw.items()})
        (expected_grad,) = torch.autograd.grad(expected.sum(), h)
        loss, grad = op(logits, target, table, -100, NONE, **kw)
        bound = 120 * (T_inv.abs().sum(1).max().item() if table is T_inv else 1)
        torch.testing.assert_close(loss.double().reshape(-1), expected.detach(), **_tol(dtype, bound))
        torch.testing.assert_close(grad.double().movedim(1, -1).reshape(-1, C), expected_grad, **_tol(dtype, bound))


@pytest.mark.parametrize("C", [6, 300])
@pytest.mark.parametrize("wrt_log", [True, False])
def test_table_gradient_matches_the_reference(capability, C, wrt_log):
    logits, target, log_T_t, _, weight, _ = _inputs(50, C, torch.float64, seed=C)
    row_grad = torch.rand(50, dtype=torch.float64)
    T_t = log_T_t.exp()
    for reduction, rg in ((MEAN, None), (SUM, None), (NONE, row_grad)):
        table = (log_T_t if wrt_log else T_t.t().contiguous()).clone().requires_grad_()
        h = logits.clone().requires_grad_()
        if wrt_log:
            rows = _reference.forward_corrected_ce(h, target, table, -100, weight)
        else:
            rows = _reference.forward_corrected_ce_T(h, target, table, -100, weight)
        expected = _reference.reduce(rows, target, REDUCTIONS[reduction], -100, weight)
        grad_h, grad_table = torch.autograd.grad((expected * rg).sum() if rg is not None else expected, (h, table))
        _, grad, gt = ops._forward_corrected_ce_table_grad(logits, target, log_T_t, -100, reduction, T_t, weight, rg,
                                                           wrt_log)
        torch.testing.assert_close(grad, grad_h, **_tol(torch.float64))
        torch.testing.assert_close(gt, grad_table if wrt_log else grad_table.t(), **_tol(torch.float64))


@pytest.mark.parametrize("C", [5, 300])
@pytest.mark.parametrize("extreme", [False, True])
def test_learnable_T_matches_the_reference(capability, C, extreme):
    logits, target, _, _, weight, _ = _inputs(80, C, torch.float64, seed=C, extreme=extreme)
    g = torch.Generator().manual_seed(2)
    theta_t = (torch.randn(C, C, generator=g, dtype=torch.float64) + 2 * torch.eye(C, dtype=torch.float64)).t()
    theta_t = theta_t.contiguous()
    h, th = logits.clone().requires_grad_(), theta_t.clone().requires_grad_()
    rows = _reference.forward_corrected_ce(h, target, torch.log_softmax(th, dim=0), -100, weight)
    expected = _reference.reduce(rows, target, "mean", -100, weight)
    grad_h, grad_th = torch.autograd.grad(expected, (h, th))
    loss, grad, gth = ops._forward_corrected_ce_learnable(logits, target, theta_t, -100, MEAN, weight, None)
    torch.testing.assert_close(loss, expected.detach(), **_tol(torch.float64))
    torch.testing.assert_close(grad, grad_h, **_tol(torch.float64))
    torch.testing.assert_close(gth, grad_th, **_tol(torch.float64))


@pytest.mark.parametrize("C", [5, 40])
def test_non_finite_logits_give_nan_rows_only(capability, C):
    logits, target, _, _, _, _ = _inputs(32, C, torch.float32, seed=C)
    target[:4] = 1
    logits[0, 0], logits[1, 0], logits[2, 0], logits[3] = float("-inf"), float("inf"), float("nan"), float("-inf")
    I = torch.eye(C)
    for op, table in ((ops._forward_corrected_ce, I.log()), (ops._backward_corrected_ce, I)):
        loss, grad = op(logits, target, table, -100, NONE)
        assert torch.isfinite(loss[0]) and grad[0, 0] == 0
        assert all(torch.isnan(loss[r]) and torch.isnan(grad[r]).all() for r in (1, 2, 3))
        assert torch.isfinite(loss[4:]).all() and torch.isfinite(grad[4:]).all()


def test_dropout_mask_and_scale_grad_are_the_same_bits_in_every_build(capability):
    """Integer hashing: the mask is a function of the seed alone, whatever the instruction set."""
    x = torch.empty(1000, 37)
    torch.manual_seed(3)
    mask = ops.dropout_mask(x, 0.3)
    _ops._use_cpu_kernels("default")
    torch.manual_seed(3)
    assert torch.equal(mask, ops.dropout_mask(x, 0.3))
    _ops._use_cpu_kernels(capability)
    grad, grad_loss = torch.randn(50, 7), torch.rand(50)
    torch.testing.assert_close(ops.scale_grad(grad, grad_loss), grad * grad_loss[:, None], rtol=1e-6, atol=0)


def test_the_benchmark_builds_with_the_flags_of_setup_py():
    """benchmarks/cpu_dispatch.py reads setup.py's CPU_CAPABILITIES rather than keeping a copy."""
    spec = importlib.util.spec_from_file_location("cpu_dispatch", ROOT / "benchmarks" / "cpu_dispatch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flags = module.capability_flags()
    assert set(flags) == set(ALL) and flags["default"] == [] and {"-mavx2", "-mfma"} <= set(flags["avx2"])
    assert {"-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"} <= set(flags["avx512"])
