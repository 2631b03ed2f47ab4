"""Benchmark of the fused corrected cross-entropies against F.cross_entropy and the naive formulas.

Measures forward + backward per call in steady state (median over repeated runs, the methods taking turns
in one process, each turn after untimed calls; ratios are medians of the repeat-by-repeat ratios) and the
peak memory allocated during one call, in units of one B x C buffer; "extra" excludes the final gradient of
the logits, which every method allocates:

    fused_forward / fused_backward  ForwardCorrectedLoss / BackwardCorrectedLoss (T derived once)
    fused_forward_learnable         ForwardCorrectedLoss(T, learnable=True): gradients for the logits and T
    fused_{forward,backward}_weighted  with weight= (C,)           | cross_entropy_weighted
    fused_backward_smoothed         with label_smoothing=0.1       | cross_entropy_smoothed
    fused_{forward,backward}_kdim   (B/16, C, 16) logits, (B/16, 16) targets | cross_entropy_kdim
    cross_entropy                   F.cross_entropy (no correction)
    naive_forward                   nll(log(softmax(h) @ T))           (O(B C^2) work)
    naive_backward                  nll(log_softmax(h) @ T^-T)         (O(B C^2) work)
    compiled_naive_forward          torch.compile of naive_forward (inductor)
    compiled_logspace_forward       torch.compile of lse(h) - lse(h + log T^T[y])      (O(B C), what a
    compiled_logspace_backward      torch.compile of (T^-1[y] * -log_softmax(h)).sum(1) careful user writes)

Usage: python benchmarks/kernels.py --device cpu --threads 2 --out reports/bench/cpu.csv
Ratios printed at the end: fused / cross_entropy (target <= 0.8), naive / fused (target >= 15 at C=1000,
>= 50 at C=10000), compiled / fused for both compiled formulas; then the forward against the backward
correction (target <= 1.2), the learnable T against the fixed one (target <= 1.5 at 4096 x 1000) and against
cross_entropy (target < 1), and each weighted, smoothed and K-dimensional call against F.cross_entropy with
the same option (target <= 1). The forward correction with label smoothing is O(C^2) per row (it needs all
of T^T p, not fused) and is not timed here. On CUDA, timing uses CUDA events and
memory max_memory_allocated, and every step is timed twice: as called from Python (``median_ms``: what a
training loop sees, launch overhead included, which is most of a small call) and captured once in a CUDA
graph and replayed (``graph_ms``: the GPU's own time, from which bandwidth is judged).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
import sys
import time
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import pyrobust
from pyrobust._io import write_text

SIZES = ((4096, 10), (4096, 100), (4096, 1000), (1024, 10000))


def random_T(C: int, N: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """A dense, well-conditioned row-stochastic T: (1 - N) on the diagonal, N spread at random off it; on
    the generator's device."""
    device = generator.device if generator is not None else None
    off = torch.rand(C, C, generator=generator, dtype=torch.float64, device=device)
    off.fill_diagonal_(0)
    T = N * off / off.sum(dim=1, keepdim=True)
    T.diagonal().fill_(1 - N)
    return T


def naive_forward(T: torch.Tensor):
    def loss(h, y):
        return F.nll_loss(torch.log(F.softmax(h, dim=1) @ T), y)

    return loss


def naive_backward(T_inv: torch.Tensor):
    T_inv_t = T_inv.t()

    def loss(h, y):
        return F.nll_loss(F.log_softmax(h, dim=1) @ T_inv_t, y)

    return loss


def logspace_forward(log_T_t: torch.Tensor):
    """The forward correction in log space, O(C) per row: the strongest plain-PyTorch form."""

    def loss(h, y):
        return (torch.logsumexp(h, dim=1) - torch.logsumexp(h + log_T_t[y], dim=1)).mean()

    return loss


def logspace_backward(T_inv: torch.Tensor):
    """The backward correction with row y of T^-1 only, O(C) per row."""

    def loss(h, y):
        return (T_inv[y] * -F.log_softmax(h, dim=1)).sum(dim=1).mean()

    return loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step: Callable[[], None], device: torch.device, inner: int) -> float:
    """Seconds per call of ``step``, over ``inner`` back-to-back calls."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / inner
    t0 = time.perf_counter()
    for _ in range(inner):
        step()
    return (time.perf_counter() - t0) / inner


def time_side_by_side(steps: dict[str, Callable[[], None]], device: torch.device, repeats: int, min_time: float,
                      warmup: float = 0.5):
    """Seconds per call of each step, one per repeat. The methods take turns within every repeat, so that
    load from other processes falls on all of them alike (and ratios are taken repeat by repeat: paired);
    each repeat starts one method later, so that none always runs first. Each turn first makes ``warmup``
    times its timed calls untimed: a method's first calls after another method's run slower until its memory
    is warm again (on the 2-core CPU VM, +30-70 % on the first call and still +5-10 % on the fifth), and that
    cost depends on which method ran before, not on the method measured."""
    inner = {}
    for name, step in steps.items():
        step()  # warm up (and compile)
        _sync(device)
        inner[name] = max(1, int(min_time / max(_timed(step, device, 1), 1e-7)))
    runs: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            for _ in range(math.ceil(warmup * inner[name])):
                steps[name]()
            runs[name].append(_timed(steps[name], device, inner[name]))
    return runs


def cuda_graphed(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` (forward and backward) captured in a CUDA graph; returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture, on a side stream, as torch.cuda.graph asks
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


class _PeakMemory(TorchDispatchMode):
    """Bytes of tensor storage allocated by the ops run under it: current and peak."""

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._live: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self._live:
                    self._live.add(key)
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out

    def _free(self, key: int, nbytes: int) -> None:
        self._live.discard(key)
        self.current -= nbytes


def peak_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated during one ``step`` (forward + backward, the final gradient included)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        with _PeakMemory() as tracker:
            step()
    except Exception:  # e.g. a compiled graph that does not run under a dispatch mode
        return float("nan")
    return tracker.peak


def bench_size(B: int, C: int, dtype: torch.dtype, device: torch.device, args) -> list[dict]:
    # Everything is made on the device: T's float64 inverse is 2 C^3 flops (C = 32,000: 7e13), seconds on a
    # GPU but minutes on its host. BackwardCorrectedLoss(T) also measures T's 2-norm condition number
    # (pyrobust.losses.condition_number: an LU and an SVD, several times the inverse's time); it is set-up,
    # not timed.
    g = torch.Generator(device=device).manual_seed(0)
    T = random_T(C, generator=g)
    fused_backward = pyrobust.BackwardCorrectedLoss(T)
    T_inv = fused_backward.T_inv
    logits = torch.randn(B, C, generator=g, dtype=torch.float32, device=device).mul_(3).to(dtype).requires_grad_()
    target = torch.randint(0, C, (B,), generator=g, device=device)
    T_d, T_inv_d = T.to(dtype), T_inv.to(dtype)
    log_T_t_d = T.log().t().contiguous().to(dtype)
    weight = torch.rand(C, generator=g, device=device).add_(0.5).to(dtype)
    # K-dimensional: the same B x C logits as (B / 16, C, 16), e.g. a 4 x 4 patch of per-pixel logits
    kdim_logits = (logits.detach().reshape(B // 16, 16, C).movedim(-1, 1).contiguous().requires_grad_()
                   if B % 16 == 0 else None)
    kdim_target = target.reshape(B // 16, 16) if B % 16 == 0 else None

    learnable = pyrobust.ForwardCorrectedLoss(T, learnable=True).to(device)
    losses: dict[str, Callable] = {
        "fused_forward": pyrobust.ForwardCorrectedLoss(T),
        "fused_backward": fused_backward,
        "cross_entropy": F.cross_entropy,
        "naive_forward": naive_forward(T_d),
        "naive_backward": naive_backward(T_inv_d),
        "fused_forward_learnable": learnable,
        "fused_forward_weighted": pyrobust.ForwardCorrectedLoss(T, weight=weight),
        "fused_backward_weighted": pyrobust.BackwardCorrectedLoss(T, weight=weight),
        "cross_entropy_weighted": lambda h, y: F.cross_entropy(h, y, weight=weight),
        "fused_backward_smoothed": pyrobust.BackwardCorrectedLoss(T, label_smoothing=0.1),
        "cross_entropy_smoothed": lambda h, y: F.cross_entropy(h, y, label_smoothing=0.1),
    }
    if kdim_logits is not None:
        losses |= {
            "fused_forward_kdim": pyrobust.ForwardCorrectedLoss(T),
            "fused_backward_kdim": pyrobust.BackwardCorrectedLoss(T),
            "cross_entropy_kdim": F.cross_entropy,
        }
    if args.compile:
        losses["compiled_naive_forward"] = torch.compile(naive_forward(T_d), dynamic=False)
        losses["compiled_logspace_forward"] = torch.compile(logspace_forward(log_T_t_d), dynamic=False)
        losses["compiled_logspace_backward"] = torch.compile(logspace_backward(T_inv_d), dynamic=False)
    del T, T_inv

    def make_step(loss_fn, h=logits, y=target):
        def step():
            h.grad = None
            for p in getattr(loss_fn, "parameters", tuple)():
                p.grad = None
            loss_fn(h, y).backward()

        return step

    steps = {name: make_step(fn, *((kdim_logits, kdim_target) if name.endswith("_kdim") else ()))
             for name, fn in losses.items()}
    runs = time_side_by_side(steps, device, args.repeats, args.min_time, args.warmup)
    seconds = {name: statistics.median(r) for name, r in runs.items()}
    graph_runs = {}
    if device.type == "cuda":
        replays = {}
        for name, step in steps.items():
            try:
                replays[name] = cuda_graphed(step)
            except Exception as err:  # noqa: BLE001 - a method that cannot be captured is reported, not fatal
                print(f"{B:>5} x {C:<5} {name}: not captured in a CUDA graph ({type(err).__name__}: {err})",
                      file=sys.stderr)
        graph_runs = time_side_by_side(replays, device, args.repeats, args.min_time, args.warmup)
        del replays  # their memory pools
    graph_seconds = {name: statistics.median(r) for name, r in graph_runs.items()}
    buffer = B * C * logits.element_size()
    rows = []
    for name, step in steps.items():
        logits.grad = None
        peak = peak_memory(step, device)
        logits.grad = None
        if kdim_logits is not None:
            kdim_logits.grad = None
        rows.append(
            dict(
                device=str(device), dtype=str(dtype).removeprefix("torch."), B=B, C=C, method=name,
                threads=torch.get_num_threads(), median_ms=round(seconds[name] * 1e3, 4),
                **({"graph_ms": round(graph_seconds.get(name, float("nan")) * 1e3, 4)} if device.type == "cuda" else {}),
                # the final gradient (one B x C buffer) is part of every method's peak: "extra" excludes it
                peak_BxC=round(peak / buffer, 3), peak_extra_BxC=round(peak / buffer - 1, 3),
                backend=pyrobust.backend(device),
                # per-repeat seconds, for paired ratios (not written to the CSV)
                _median_ms=runs[name], _graph_ms=graph_runs.get(name, []),
            )
        )
        graphed = f"  (graph {rows[-1]['graph_ms']:.3f} ms)" if "graph_ms" in rows[-1] else ""
        print(f"{B:>5} x {C:<5} {name:<24} {seconds[name] * 1e3:9.3f} ms{graphed}   peak extra "
              f"{rows[-1]['peak_extra_BxC']:.2f} x BxC", file=sys.stderr)
    return rows


def paired_ratio(a: dict | None, b: dict | None, column: str) -> float:
    """Time of row ``a`` over row ``b`` in ``column``: the median of their repeat-by-repeat ratios where both
    carry their repeats (``_<column>``: measured side by side, so a slower moment of the machine cancels
    out), else the ratio of the medians; NaN where either is missing."""
    if a is None or b is None:
        return float("nan")
    ra, rb = a.get("_" + column) or [], b.get("_" + column) or []
    if ra and len(ra) == len(rb):
        return statistics.median(x / y for x, y in zip(ra, rb))
    return a[column] / b[column]


def ratios(rows: list[dict], column: str = "median_ms") -> list[str]:
    """Time ratios per size, from ``column`` (``median_ms``, or ``graph_ms`` on CUDA), paired by repeat
    (:func:`paired_ratio`)."""
    out = [f"ratios of {column} (medians of per-repeat ratios):"]
    by = {(r["dtype"], r["B"], r["C"], r["method"]): r for r in rows}
    for dtype, B, C in sorted({(r["dtype"], r["B"], r["C"]) for r in rows}, key=lambda k: (k[0], k[2])):
        ratio = lambda m, n: paired_ratio(by.get((dtype, B, C, m)), by.get((dtype, B, C, n)), column)  # noqa: E731
        out.append(
            f"{dtype:<8} {B:>5} x {C:<5}  fwd/CE {ratio('fused_forward', 'cross_entropy'):5.2f}"
            f"  bwd/CE {ratio('fused_backward', 'cross_entropy'):5.2f}"
            f"  naive/fused fwd {ratio('naive_forward', 'fused_forward'):7.1f}"
            f"  bwd {ratio('naive_backward', 'fused_backward'):7.1f}"
            f"  compiled naive/fused fwd {ratio('compiled_naive_forward', 'fused_forward'):7.1f}"
            f"  compiled log-space/fused fwd {ratio('compiled_logspace_forward', 'fused_forward'):5.2f}"
            f"  bwd {ratio('compiled_logspace_backward', 'fused_backward'):5.2f}"
        )
    out.append(f"drop-in features ({column}): fused / F.cross_entropy with the same option, fwd/bwd, learnable T:")
    for dtype, B, C in sorted({(r["dtype"], r["B"], r["C"]) for r in rows}, key=lambda k: (k[0], k[2])):
        ratio = lambda m, n: paired_ratio(by.get((dtype, B, C, m)), by.get((dtype, B, C, n)), column)  # noqa: E731
        out.append(
            f"{dtype:<8} {B:>5} x {C:<5}  fwd/bwd {ratio('fused_forward', 'fused_backward'):5.2f}"
            f"  learnable/fwd {ratio('fused_forward_learnable', 'fused_forward'):5.2f}"
            f"  learnable/CE {ratio('fused_forward_learnable', 'cross_entropy'):5.2f}"
            f"  weighted fwd/CE {ratio('fused_forward_weighted', 'cross_entropy_weighted'):5.2f}"
            f"  bwd/CE {ratio('fused_backward_weighted', 'cross_entropy_weighted'):5.2f}"
            f"  smoothed bwd/CE {ratio('fused_backward_smoothed', 'cross_entropy_smoothed'):5.2f}"
            f"  K-dim fwd/CE {ratio('fused_forward_kdim', 'cross_entropy_kdim'):5.2f}"
            f"  bwd/CE {ratio('fused_backward_kdim', 'cross_entropy_kdim'):5.2f}"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--sizes", nargs="+", default=[f"{B}x{C}" for B, C in SIZES], help="BxC, e.g. 4096x10")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="untimed calls at the start of each turn, as a fraction of the timed ones")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--out", default=None, help="CSV to write (e.g. reports/bench/cpu.csv)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    for dtype_name in args.dtype:
        for size in args.sizes:
            B, C = (int(v) for v in size.lower().split("x"))
            rows += bench_size(B, C, getattr(torch, dtype_name), device, args)

    for column in ("median_ms", "graph_ms"):
        if column in rows[0]:
            print("\n".join(ratios(rows, column)))
    if args.out:
        buffer = io.StringIO(newline="")
        fields = [k for k in rows[0] if not k.startswith("_")]
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_text(args.out, buffer.getvalue())  # atomic: a killed benchmark never leaves half a CSV
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
