"""Smoke tests of the kernel benchmark (benchmarks/kernels.py) on the CPU, at sizes that take a second.

Its numbers are judged by people, not tests; what is tested is that it runs, times every method and
writes the CSV that is committed under reports/bench/, so that a GPU run (benchmarks/gpu_check.sh,
with minutes of device time) is not spent on a broken script.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernel_benchmark_times_every_method_and_writes_its_csv(tmp_path, capsys):
    kernels = _load("kernels")
    out = tmp_path / "cpu.csv"
    kernels.main(["--sizes", "64x10", "32x40", "--no-compile", "--repeats", "1", "--min-time", "0.001",
                  "--out", str(out)])
    rows = list(csv.DictReader(out.open()))
    methods = {
        "fused_forward", "fused_backward", "cross_entropy", "naive_forward", "naive_backward",
        "fused_forward_learnable", "fused_forward_weighted", "fused_backward_weighted", "cross_entropy_weighted",
        "fused_backward_smoothed", "cross_entropy_smoothed", "fused_forward_kdim", "fused_backward_kdim",
        "cross_entropy_kdim",
    }  # fmt: skip
    assert {(r["B"], r["C"]) for r in rows} == {("64", "10"), ("32", "40")}
    assert {r["method"] for r in rows} == methods and len(rows) == 2 * len(methods)
    assert all(float(r["median_ms"]) > 0 and r["backend"] == "cpp" for r in rows)
    assert "graph_ms" not in rows[0]  # CUDA graphs only on CUDA
    printed = capsys.readouterr().out
    assert "ratios of median_ms" in printed and "32 x 40" in printed
    assert not any(key.startswith("_") for key in rows[0])  # the per-repeat times stay out of the CSV


def test_ratios_are_medians_of_per_repeat_ratios():
    kernels = _load("kernels")
    # repeat 2 ran on a busy machine for both methods: paired, it cancels out (ratios 2, 2, 2); the ratio of
    # the medians (3 / 1.5) happens to agree here, and differs in the second case
    a = {"median_ms": 3.0, "_median_ms": [2.0, 8.0, 3.0]}
    b = {"median_ms": 1.5, "_median_ms": [1.0, 4.0, 1.5]}
    assert kernels.paired_ratio(a, b, "median_ms") == 2.0
    c = {"median_ms": 3.0, "_median_ms": [2.0, 8.0, 3.0]}
    d = {"median_ms": 2.0, "_median_ms": [1.0, 2.0, 3.0]}
    assert kernels.paired_ratio(c, d, "median_ms") == 2.0  # ratios 2, 4, 1; medians give 1.5
    assert kernels.paired_ratio(c, {"median_ms": 4.0}, "median_ms") == 0.75  # no repeats: ratio of medians
    assert math.isnan(kernels.paired_ratio(c, None, "median_ms"))


def test_random_T_is_row_stochastic_with_the_given_noise():
    kernels = _load("kernels")
    T = kernels.random_T(50, N=0.3, generator=torch.Generator().manual_seed(1))
    assert T.dtype == torch.float64 and (T >= 0).all()
    torch.testing.assert_close(T.sum(1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(T.diagonal(), torch.full((50,), 0.7, dtype=torch.float64))
