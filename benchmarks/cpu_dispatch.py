"""Benchmark of the dispatched CPU kernels against a ``-march=native`` build of the same kernels.

setup.py builds the CPU kernels once per instruction set (default, avx2, avx512) and ``pyrobust._C`` picks
one at load (kernels/cpu/dispatch.cpp). This script compiles kernels/cpu/kernels.cpp once more with
``-march=native`` (torch.utils.cpp_extension, into ``--build-dir``: a minute or two the first time, then
cached) and times forward + backward of the fused losses, and the dropout mask, under both builds in one
process, the builds taking turns within every repeat so that load from other processes falls on both alike.
Target: dispatched / native <= 1.05 at every size.

``--compare NAME=FILE`` adds a build of another kernels.cpp-like file (e.g. a copy of kernels/cpu before a
change), compiled with the flags of the dispatched capability: a refactoring checked side by side.

Usage: python benchmarks/cpu_dispatch.py --threads 1 --cpu-time [--sizes 4096x10 ...] [--capability avx2]
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import io
import math
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import torch

import pyrobust
from pyrobust import _ops
from pyrobust._io import write_text

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("4096x10", "4096x100", "4096x1000", "1024x10000")
# What setup.py compiles the kernels with, but for the capability's own flags: Python's CFLAGS (setuptools
# passes them: -fwrapv changes how GCC compiles loops), then setup.py's.
BASE_FLAGS = [*(sysconfig.get_config_var("CFLAGS") or "").split(), "-O3", "-std=c++20", "-fopenmp",
              "-fvisibility=hidden", "-fvisibility-inlines-hidden"]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def capability_flags() -> dict[str, list[str]]:
    """``CPU_CAPABILITIES`` of setup.py (read, not imported: importing it would run setup())."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CPU_CAPABILITIES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py defines no CPU_CAPABILITIES")


def build(name: str, source: Path, capability: str, flags: list[str], build_dir: Path) -> str:
    """Compiles ``source`` (a build of the CPU kernels named ``capability``) into a library; returns its path."""
    from torch.utils.cpp_extension import load

    directory = build_dir / name
    directory.mkdir(parents=True, exist_ok=True)
    print(f"building the {name} kernels ({' '.join(flags)}) in {directory} ...", file=sys.stderr)
    return load(
        name=f"pyrobust_cpu_{name}", sources=[str(source)], build_directory=str(directory),
        extra_cflags=[*BASE_FLAGS, *flags, f"-DPYROBUST_CPU_CAPABILITY={capability}"], extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(ROOT / "kernels" / "include")], is_python_module=False,
    )


def steps_for(B: int, C: int, seed: int = 0) -> dict[str, Callable[[], None]]:
    """Forward + backward of each fused loss on (B, C) float32 logits, and one dropout mask of that shape."""
    bench = _load_script("kernels")
    g = torch.Generator().manual_seed(seed)
    T = bench.random_T(C, generator=g)
    logits = torch.randn(B, C, generator=g).mul_(3).requires_grad_()
    target = torch.randint(0, C, (B,), generator=g)
    losses = {
        "forward": (pyrobust.ForwardCorrectedLoss(T), logits, target),
        "backward": (pyrobust.BackwardCorrectedLoss(T), logits, target),
        "forward_learnable": (pyrobust.ForwardCorrectedLoss(T, learnable=True), logits, target),
    }
    if B % 16 == 0:  # K-dimensional: the same logits as (B / 16, C, 16)
        kdim = logits.detach().reshape(B // 16, 16, C).movedim(-1, 1).contiguous().requires_grad_()
        kdim_target = target.reshape(B // 16, 16)
        losses["forward_kdim"] = (pyrobust.ForwardCorrectedLoss(T), kdim, kdim_target)
        losses["backward_kdim"] = (pyrobust.BackwardCorrectedLoss(T), kdim, kdim_target)

    def step(loss_fn, h, y):
        def run():
            h.grad = None
            for p in loss_fn.parameters():
                p.grad = None
            loss_fn(h, y).backward()

        return run

    steps = {name: step(*args) for name, args in losses.items()}
    x = logits.detach()
    steps["dropout_mask"] = lambda: torch.ops.pyrobust.dropout_mask(x, 0.5)
    return steps


def timed(step: Callable[[], None], inner: int, clock: Callable[[], float]) -> float:
    """Seconds per call of ``step`` over ``inner`` back-to-back calls, by ``clock``."""
    t0 = clock()
    for _ in range(inner):
        step()
    return (clock() - t0) / inner


def time_builds(steps: dict[str, Callable[[], None]], builds: dict[str, tuple[str, str | None]], repeats: int,
                min_time: float, clock: Callable[[], float], warmup: float = 0.5) -> dict[str, dict[str, float]]:
    """Median seconds per call of every step under every build ({name: (capability, library or None)}); the
    builds take turns within every repeat, in alternating order, and each turn of a step first makes
    ``warmup`` times its timed calls untimed (steady state, as benchmarks/kernels.py times)."""
    for capability, library in builds.values():  # warm up every build
        _ops._use_cpu_kernels(capability, library)
        for s in steps.values():
            s()
    inner = {name: max(1, int(min_time / max(timed(s, 1, clock), 1e-7))) for name, s in steps.items()}
    runs = {b: {name: [] for name in steps} for b in builds}
    order = list(builds)
    for _ in range(repeats):
        for build_name in order:
            _ops._use_cpu_kernels(*builds[build_name])
            for name, s in steps.items():
                for _ in range(math.ceil(warmup * inner[name])):
                    s()
                runs[build_name][name].append(timed(s, inner[name], clock))
        order.reverse()
    return {b: {name: statistics.median(r) for name, r in per.items()} for b, per in runs.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="BxC, e.g. 4096x10")
    parser.add_argument("--capability", default=None, help="dispatched build to time (default: the one chosen at load)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="NAME=FILE",
                        help="also time builds of these kernels.cpp-like files, with the dispatched build's flags")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="untimed calls at the start of each turn, as a fraction of the timed ones")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time (all threads), not the wall clock: steadier on a "
                        "machine that other work shares")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "cpu_bench")
    parser.add_argument("--out", default=None, help="CSV to write")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if pyrobust.backend("cpu") != "cpp":
        raise SystemExit("the compiled CPU kernels are not loaded: build them first (setup.py build_ext --inplace)")
    dispatched = args.capability or _ops.cpu_capability()
    flags = capability_flags()
    builds: dict[str, tuple[str, str | None]] = {dispatched: (dispatched, None)}
    builds["native"] = ("native", build("native", ROOT / "kernels" / "cpu" / "kernels.cpp", "native",
                                        ["-march=native"], args.build_dir))
    for spec in args.compare:
        name, _, file = spec.partition("=")
        builds[name] = (dispatched, build(name, Path(file).resolve(), dispatched, flags[dispatched], args.build_dir))

    rows = []
    try:
        for size in args.sizes:
            B, C = (int(v) for v in size.lower().split("x"))
            clock = time.process_time if args.cpu_time else time.perf_counter
            seconds = time_builds(steps_for(B, C), builds, args.repeats, args.min_time, clock, args.warmup)
            for method in seconds[dispatched]:
                row = {"B": B, "C": C, "method": method, "threads": torch.get_num_threads()}
                row |= {f"{b}_ms": round(seconds[b][method] * 1e3, 4) for b in builds}
                row |= {f"{b}/native": round(seconds[b][method] / seconds["native"][method], 3)
                        for b in builds if b != "native"}
                rows.append(row)
                print(f"{B:>5} x {C:<5} {method:<18} " + "  ".join(
                    f"{b} {seconds[b][method] * 1e3:8.3f} ms" for b in builds) + "   " + "  ".join(
                    f"{b}/native {row[f'{b}/native']:.3f}" for b in builds if b != "native"), file=sys.stderr)
    finally:
        _ops._use_cpu_kernels(dispatched)
    for b in builds:
        if b != "native":
            ratios = [r[f"{b}/native"] for r in rows]
            print(f"{b} / native: geometric mean {statistics.geometric_mean(ratios):.3f}, max {max(ratios):.3f} "
                  f"(target <= 1.05)")
    if args.out:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text(args.out, buffer.getvalue())
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
