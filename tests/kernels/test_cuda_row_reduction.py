"""The CUDA kernels' row reduction (kernels/include/pyrobust/row_reduction.h), run on the host.

No GPU is needed: a small C++ program includes the same header the kernels use and splits each row
exactly as they do (thread `lane` of a group of G folds the vectors at columns (i G + lane) V, a warp's
butterfly over shuffle masks 16..1, then the warps of a block in order), in float32. Its losses and
gradients are compared with the float64 reference formulas; it also asserts that every lane of a
butterfly ends with the same bits, which the kernels rely on. What this cannot check (memory access,
launch shapes, 16-bit types) is covered on a GPU by the device-parametrised tests and
benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrobust import _reference

ROOT = Path(__file__).resolve().parents[2]

EMULATOR = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pyrobust/row_reduction.h"

using namespace pyrobust;

template <class Loss, int kVec>
int run(int group, int64_t B, int C, int64_t ignore_index, const float* logits, const int64_t* target,
        const float* table, float* loss, float* grad) {
  using State = typename Loss::State;
  for (int64_t row = 0; row < B; ++row) {
    const float* h = logits + row * C;
    float* g = grad + row * C;
    const int64_t y = target[row];
    if (y == ignore_index) {
      loss[row] = 0;
      for (int j = 0; j < C; ++j) g[j] = 0;
      continue;
    }
    const float* t = table + y * C;
    std::vector<State> lanes(group, Loss::empty());
    for (int lane = 0; lane < group; ++lane) {
      for (int col = lane * kVec; col < C; col += group * kVec) {
        float hv[kVec], tv[kVec];
        for (int k = 0; k < kVec; ++k) hv[k] = h[col + k], tv[k] = t[col + k];
        lanes[lane] = Loss::combine(lanes[lane], Loss::chunk(hv, tv));
      }
    }
    for (int mask = 16; mask > 0; mask /= 2) {  // __shfl_xor_sync within each warp
      std::vector<State> next(lanes);
      for (int lane = 0; lane < group; ++lane) next[lane] = Loss::combine(lanes[lane], lanes[lane ^ mask]);
      lanes = next;
    }
    for (int lane = 0; lane < group; ++lane) {
      if (std::memcmp(&lanes[lane], &lanes[lane - lane % 32], sizeof(State)) != 0) {
        std::fprintf(stderr, "row %lld: lane %d differs from lane 0 of its warp\n", (long long)row, lane);
        return 2;
      }
    }
    State total = lanes[0];  // the block path: warp totals combined in order through shared memory
    for (int w = 1; w < group / 32; ++w) total = Loss::combine(total, lanes[w * 32]);
    const typename Loss::Row r = Loss::finish(total, loss[row]);
    for (int j = 0; j < C; ++j) g[j] = Loss::grad(h[j], t[j], r);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 6) return 1;
  const bool forward = std::strcmp(argv[3], "forward") == 0;
  const int group = std::atoi(argv[4]), vec = std::atoi(argv[5]);
  std::FILE* in = std::fopen(argv[1], "rb");
  int64_t head[3];
  if (!in || std::fread(head, sizeof head, 1, in) != 1) return 1;
  const int64_t B = head[0], ignore_index = head[2];
  const int C = static_cast<int>(head[1]);
  std::vector<float> logits(B * C), table(int64_t(C) * C), loss(B), grad(B * C);
  std::vector<int64_t> target(B);
  if (std::fread(logits.data(), sizeof(float), logits.size(), in) != logits.size() ||
      std::fread(target.data(), sizeof(int64_t), B, in) != size_t(B) ||
      std::fread(table.data(), sizeof(float), table.size(), in) != table.size()) return 1;
  std::fclose(in);
  auto go = [&](auto kernel) {
    return kernel(group, B, C, ignore_index, logits.data(), target.data(), table.data(), loss.data(), grad.data());
  };
  int rc;
  if (forward) rc = vec == 4 ? go(run<ForwardCorrection<float>, 4>) : go(run<ForwardCorrection<float>, 1>);
  else rc = vec == 4 ? go(run<BackwardCorrection<float>, 4>) : go(run<BackwardCorrection<float>, 1>);
  if (rc) return rc;
  std::FILE* out = std::fopen(argv[2], "wb");
  std::fwrite(loss.data(), sizeof(float), B, out);
  std::fwrite(grad.data(), sizeof(float), grad.size(), out);
  std::fclose(out);
  return 0;
}
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    d = tmp_path_factory.mktemp("emulator")
    (d / "emulator.cpp").write_text(EMULATOR)
    cmd = [cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'kernels' / 'include'}",
           str(d / "emulator.cpp"), "-o", str(d / "emulator")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    def run(kind, logits, target, table, group, vec, ignore_index=-100):
        B, C = logits.shape
        with open(d / "in.bin", "wb") as f:
            f.write(np.array([B, C, ignore_index], dtype=np.int64).tobytes())
            f.write(logits.numpy().astype(np.float32).tobytes())
            f.write(target.numpy().astype(np.int64).tobytes())
            f.write(table.numpy().astype(np.float32).tobytes())
        proc = subprocess.run([str(d / "emulator"), str(d / "in.bin"), str(d / "out.bin"), kind, str(group), str(vec)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = np.fromfile(d / "out.bin", dtype=np.float32)
        return torch.from_numpy(out[:B].copy()), torch.from_numpy(out[B:].reshape(B, C).copy())

    return run


def _case(B, C, *, scale=3.0, zeros=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, C, generator=g, dtype=torch.float64) * scale).float()
    target = torch.randint(0, C, (B,), generator=g)
    target[1] = -100
    T = torch.rand(C, C, generator=g, dtype=torch.float64) + C * torch.eye(C, dtype=torch.float64) / 4
    if zeros:  # structural zeros, as in the paper's T: log T = -inf there
        T[torch.rand(C, C, generator=g) < 0.5] = 0
        T.fill_diagonal_(1.0)
    T /= T.sum(dim=1, keepdim=True)
    return logits, target, T


def _expected(kind, logits, target, table):
    h = logits.double().requires_grad_()
    ref = _reference.forward_corrected_ce if kind == "forward" else _reference.backward_corrected_ce
    loss = ref(h, target, table, -100)
    (grad,) = torch.autograd.grad(loss.sum(), h)
    return loss.detach(), grad


# (C, G, V): the kernels' warp path (G = 32) with scalar and 16-byte accesses, rows shorter than a warp,
# rows of several vectors per lane, and the block path (G = 512) with partly empty warps.
SHAPES = [(10, 32, 1), (37, 32, 1), (100, 32, 4), (1000, 32, 4), (1500, 512, 4), (3001, 512, 1)]


@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize(("C", "G", "V"), SHAPES)
def test_row_reduction_matches_float64_reference(emulator, kind, C, G, V):
    logits, target, T = _case(16, C, zeros=kind == "forward", seed=C)
    table = T.log().t().contiguous() if kind == "forward" else torch.linalg.inv(T)
    loss, grad = emulator(kind, logits, target, table, G, V)
    expected_loss, expected_grad = _expected(kind, logits, target, table.float().double())
    torch.testing.assert_close(loss.double(), expected_loss, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=2e-5, atol=2e-6)
    assert loss[1] == 0 and (grad[1] == 0).all()


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_extreme_logits_lose_no_digits(emulator, kind):
    # +-100 logits: terms are formed after subtracting the running maximum, so a confident, correct
    # prediction has a loss near 0 rather than the rounding error of lse(h) ~ 100 in float32.
    C = 64
    logits, target, T = _case(8, C, seed=1)
    logits = torch.where(torch.rand(8, C, generator=torch.Generator().manual_seed(2)) < 0.5, -100.0, 100.0)
    logits[0] = -100.0
    logits[0, target[0]] = 100.0
    table = T.log().t().contiguous() if kind == "forward" else torch.linalg.inv(T)
    loss, grad = emulator(kind, logits, target, table, 32, 4)
    expected_loss, expected_grad = _expected(kind, logits, target, table.float().double())
    torch.testing.assert_close(loss.double(), expected_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-5, atol=1e-6)


def test_identity_T_gives_cross_entropy(emulator):
    logits, target, _ = _case(16, 100, seed=3)
    eye = torch.eye(100, dtype=torch.float64)
    expected = torch.nn.functional.cross_entropy(logits.double(), target, reduction="none")
    for kind, table in (("forward", eye.log()), ("backward", eye)):
        loss, _ = emulator(kind, logits, target, table, 32, 4)
        torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize(("C", "G", "V"), [(10, 32, 1), (100, 32, 4), (1500, 512, 4)])
def test_non_finite_logits(emulator, kind, C, G, V):
    """A masked class (-inf, here a whole vector's worth of them, so that some lanes' chunks hold -inf only):
    the limit of the formula, finite with T = I; +inf or NaN anywhere, or every logit -inf: NaN loss and
    gradient, as F.cross_entropy. Other rows are untouched."""
    inf, nan = float("inf"), float("nan")
    logits, target, _ = _case(8, C, seed=C)
    target[:] = 0
    logits[0, 1:9] = -inf
    logits[2, 5] = inf
    logits[3, 5] = nan
    logits[4] = -inf
    eye = torch.eye(C, dtype=torch.float64)
    table = eye.log() if kind == "forward" else eye
    loss, grad = emulator(kind, logits, target, table, G, V)
    expected = torch.nn.functional.cross_entropy(logits.double(), target, reduction="none")
    torch.testing.assert_close(loss[0].double(), expected[0], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(grad[0]).all() and (grad[0, 1:9] == 0).all()
    for row in (2, 3, 4):
        assert torch.isnan(loss[row]) and torch.isnan(grad[row]).all(), row
    assert torch.isfinite(loss[5:]).all() and torch.isfinite(grad[5:]).all()
