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


def test_each_turn_is_timed_after_untimed_calls_of_its_own(monkeypatch):
    """A turn's timed calls follow ceil(warmup * inner) untimed calls of the same method, never another's."""
    kernels = _load("kernels")
    calls: list[str] = []
    timed: list[tuple[str, int]] = []  # (method, calls of it made since another method ran)

    def fake_timed(step, device, inner):
        name = step.__name__
        run = len(calls) - max((i + 1 for i, c in enumerate(calls) if c != name), default=0)
        timed.append((name, run))
        for _ in range(inner):
            step()
        return 1.0

    monkeypatch.setattr(kernels, "_timed", fake_timed)

    def make(name):
        def step():
            calls.append(name)
        step.__name__ = name
        return step

    steps = {name: make(name) for name in ("a", "b", "c")}
    runs = kernels.time_side_by_side(steps, torch.device("cpu"), repeats=4, min_time=4.0, warmup=0.5)
    assert {name: len(r) for name, r in runs.items()} == {"a": 4, "b": 4, "c": 4}
    # inner = 4 (min_time over the 1.0 s fake_timed returns): each timed turn after 2 untimed calls of its own;
    # the first three entries are the calibration calls, after the one warm-up call each
    assert timed[:3] == [("a", 1), ("b", 1), ("c", 1)]
    assert [run for _, run in timed[3:]] == [2] * 12
    assert [name for name, _ in timed[3:6]] == ["a", "b", "c"] and [name for name, _ in timed[6:9]] == ["b", "c", "a"]
    kernels.time_side_by_side(steps, torch.device("cpu"), repeats=1, min_time=4.0, warmup=0.0)
    assert [run for _, run in timed[-3:]] == [0, 0, 0]


def test_each_build_turn_is_timed_after_untimed_calls_of_its_own(monkeypatch):
    """benchmarks/cpu_dispatch.py: as kernels.py, a step's timed calls under a build follow
    ceil(warmup * inner) untimed calls of that step under that build."""
    cpu_dispatch = _load("cpu_dispatch")
    calls: list[str] = []
    runs_before: list[int] = []

    def fake_timed(step, inner, clock):
        name = step.__name__
        runs_before.append(len(calls) - max((i + 1 for i, c in enumerate(calls) if c != name), default=0))
        for _ in range(inner):
            step()
        return 1.0

    monkeypatch.setattr(cpu_dispatch, "timed", fake_timed)
    monkeypatch.setattr(cpu_dispatch._ops, "_use_cpu_kernels", lambda capability, library: calls.append(capability))

    def make(name):
        def step():
            calls.append(name)
        step.__name__ = name
        return step

    steps = {name: make(name) for name in ("a", "b")}
    builds = {"x": ("cap_x", None), "y": ("cap_y", None)}
    seconds = cpu_dispatch.time_builds(steps, builds, repeats=3, min_time=4.0, clock=lambda: 0.0, warmup=0.5)
    assert set(seconds) == {"x", "y"} and all(set(per) == {"a", "b"} for per in seconds.values())
    # two calibration calls, then 3 repeats x 2 builds x 2 steps, each after 2 untimed calls (inner = 4)
    assert runs_before[2:] == [2] * 12


def test_random_T_is_row_stochastic_with_the_given_noise():
    kernels = _load("kernels")
    T = kernels.random_T(50, N=0.3, generator=torch.Generator().manual_seed(1))
    assert T.dtype == torch.float64 and (T >= 0).all()
    torch.testing.assert_close(T.sum(1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(T.diagonal(), torch.full((50,), 0.7, dtype=torch.float64))
