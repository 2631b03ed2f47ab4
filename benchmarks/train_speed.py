"""Training speed of ``pyrobust.experiment`` (run: ``python benchmarks/train_speed.py [--cuda-only|--cpu-only]``).

1. MNIST-5k, fully connected net, 40 epochs (the paper's schedule), ``forward`` and ``cross_entropy``, on
   one CPU thread. Target: <= 2 s per run (CPU time, best of ``--repeats``). Printed side by side with a
   bare PyTorch loop doing the same work (same net, AdaGrad, batch 128, same epochs, ``F.cross_entropy``,
   one validation pass per epoch), written as a PyTorch expert would, so the trainer/bare ratio shows what
   the trainer adds over the minimum.
2. When CUDA is available: one epoch of ResNet-14 on CIFAR-shaped random data (50,000 x 3 x 32 x 32,
   batch 128, bf16 autocast, channels_last, crop + flip augmentation, validation on 5,000).
   Target: <= 4 s per epoch on an H100.
3. ``--compare-adagrad``: the CPU AdaGrad by the private kernel ``torch._fused_adagrad_``
   (``pyrobust.experiment.optim._Adagrad``) against the public ``torch.optim.Adagrad(fused=True)``, each in
   fresh processes (a workflow job is one): MNIST-5k, 40 epochs, seed 0, one thread. Prints the CPU time of
   the whole process and of the training alone, their ratio, and whether both give the same record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from pyrobust.data import load
from pyrobust.models import build_model
from pyrobust.experiment.config import TrainConfig
from pyrobust.experiment.labels import NoisyLabels, corrupt_labels
from pyrobust.experiment.run import train_methods

TARGET_S = 2.0  # issue 4: MNIST-5k fc, 40 epochs, one CPU thread


def bare_loop(data, noisy: NoisyLabels, epochs: int) -> tuple[float, float]:
    """The minimum: the same net (``build_model("fc")``) and optimiser in the plain loop a PyTorch expert
    would write for data this small: tensors in memory, one gather per epoch into reused buffers and
    batches as slices of it, ``torch.optim.Adagrad(fused=True)``, gradients set to None, validation under
    ``inference_mode`` with one ``.item()`` per epoch. Returns (wall, CPU) seconds."""
    torch.manual_seed(0)
    x, y = data.x_train, torch.from_numpy(noisy.labels)
    perm = torch.randperm(len(y))
    val, tr = perm[: len(y) // 10], perm[len(y) // 10 :]
    x_val, y_val = x[val], y[val]
    x_epoch, y_epoch = x.new_empty((len(tr), x.shape[1])), y.new_empty(len(tr))
    start, cpu = time.perf_counter(), time.process_time()
    model = build_model("fc", 10)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.01, eps=1e-6, fused=True)
    for _ in range(epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        torch.index_select(x, 0, order, out=x_epoch)
        torch.index_select(y, 0, order, out=y_epoch)
        for s in range(0, len(order), 128):
            loss = F.cross_entropy(model(x_epoch[s : s + 128]), y_epoch[s : s + 128])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            F.cross_entropy(model(x_val), y_val).item()
    return time.perf_counter() - start, time.process_time() - cpu


def cpu_benchmark(repeats: int) -> None:
    torch.set_num_threads(1)
    data = load("mnist5k")
    noisy = corrupt_labels(data, "asymmetric", 0.6, seed=0)
    config = TrainConfig.paper("mnist5k", "cross_entropy", noise="asymmetric", N=0.6, threads=1, device="cpu")
    print(f"MNIST-5k fc, {config.epochs} epochs, 1 CPU thread ({len(data.y_train)} train+val examples); best of "
          f"{repeats}. CPU time is what a run costs on a shared machine; wall time is what it costs alone. 'first' "
          "is the first such run in this process, with the one-off costs of its code path (lazy imports: "
          "building a torch.optim optimizer imports torch._dynamo).")
    # the trainer first, so that its first run is the process's first and pays only its own one-off costs
    runs: dict[str, list[tuple[float, float]]] = {"cross_entropy": [], "forward": []}
    accuracy = {}
    for method in runs:
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            record = train_methods(config, [method], data=data, noisy=noisy, progress=False)[0]
            runs[method].append((time.perf_counter() - start, time.process_time() - cpu))
            accuracy[method] = record["test_accuracy"]
    runs["bare"] = [bare_loop(data, noisy, config.epochs) for _ in range(repeats)]

    best = {name: (min(w for w, _ in times), min(c for _, c in times)) for name, times in runs.items()}
    bare_wall, bare_cpu = best["bare"]
    first_bare = runs["bare"][0][1]
    print(f"  {'bare PyTorch loop':<24} wall {bare_wall:5.2f} s  CPU {bare_cpu:5.2f} s  (first {first_bare:.2f} s)")
    for method in ("cross_entropy", "forward"):
        wall, cpu = best[method]
        verdict = "met" if cpu <= TARGET_S else "NOT met"
        print(f"  {'pyrobust ' + method:<24} wall {wall:5.2f} s  CPU {cpu:5.2f} s  (first {runs[method][0][1]:.2f} s; "
              f"trainer/bare {cpu / bare_cpu:.2f}; {cpu / config.epochs * 1000:.0f} ms/epoch; "
              f"test acc {accuracy[method]:.1f}%)  target <= {TARGET_S:g} s: {verdict}")


def cuda_benchmark() -> None:
    from pyrobust.data import Dataset

    device = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    data = Dataset(
        name="cifar10",
        x_train=torch.randn(50_000, 3, 32, 32, generator=g),
        y_train=torch.randint(0, 10, (50_000,), generator=g),
        x_test=torch.randn(10_000, 3, 32, 32, generator=g),
        y_test=torch.randint(0, 10, (10_000,), generator=g),
        num_classes=10,
    )
    noisy = NoisyLabels("cifar10", "none", 0.0, 0, data.y_train.numpy(), torch.eye(10, dtype=torch.float64).numpy())
    config = TrainConfig.paper("cifar10", "cross_entropy", device="cuda", epochs=1)
    train_methods(config, ["forward"], data=data, noisy=noisy, progress=False)  # warm-up: cuDNN autotuning
    for epochs in (1, 3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        train_methods(config.replace(epochs=epochs), ["forward"], data=data, noisy=noisy, progress=False)
        torch.cuda.synchronize()
        per_epoch = (time.perf_counter() - start) / epochs
    verdict = "ok" if per_epoch <= 4.0 else "SLOWER than the 4 s target (H100)"
    print(f"ResNet-14, 45,000 CIFAR-shaped images/epoch, bf16 + channels_last on {torch.cuda.get_device_name(device)}:"
          f" {per_epoch:.2f} s/epoch (mean of 3 epochs incl. validation)  target <= 4 s: {verdict}")


def _adagrad_child(variant: str) -> None:
    """One fresh-process run for :func:`compare_adagrad`; prints its timings as one JSON line."""
    from pyrobust.experiment import optim

    if variant == "torch.optim":
        optim._private_kernel_works = lambda: False
    elif not optim._private_kernel_works():
        raise SystemExit("this torch has no usable torch._fused_adagrad_")
    data = load("mnist5k")
    config = TrainConfig.paper("mnist5k", "cross_entropy", noise="asymmetric", N=0.6, seed=0, threads=1, device="cpu")
    start, cpu = time.perf_counter(), time.process_time()
    record = train_methods(config, ["cross_entropy"], data=data, progress=False)[0]
    print(json.dumps({
        "train_wall": time.perf_counter() - start, "train_cpu": time.process_time() - cpu,
        "process_cpu": time.process_time(), "dynamo": "torch._dynamo" in sys.modules,
        "result": [record["test_accuracy"], record["val_loss"]],
    }))


def compare_adagrad(repeats: int) -> None:
    """Fresh-process MNIST-5k runs with each AdaGrad implementation, alternated; best of ``repeats``."""
    runs: dict[str, list[dict]] = {"private kernel": [], "torch.optim": []}
    for _ in range(repeats):
        for variant in ("private", "torch.optim"):
            out = subprocess.run([sys.executable, __file__, "--adagrad-child", variant], capture_output=True,
                                 text=True, check=True).stdout
            runs["private kernel" if variant == "private" else "torch.optim"].append(json.loads(out.splitlines()[-1]))
    print(f"AdaGrad on CPU, MNIST-5k fc, 40 epochs, 1 thread, fresh process each; best of {repeats} "
          "(CPU seconds: whole process incl. imports / training alone)")
    best = {}
    for name, times in runs.items():
        best[name] = (min(t["process_cpu"] for t in times), min(t["train_cpu"] for t in times))
        print(f"  {name:<15} process {best[name][0]:5.2f} s  training {best[name][1]:5.2f} s  "
              f"(wall {min(t['train_wall'] for t in times):5.2f} s; torch._dynamo imported: {times[0]['dynamo']})")
    same = len({json.dumps(t["result"]) for times in runs.values() for t in times}) == 1
    (pp, pt), (tp, tt) = best["private kernel"], best["torch.optim"]
    print(f"  torch.optim / private: process {tp / pp:.2f}x, training {tt / pt:.2f}x; identical records: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cpu-only", action="store_true")
    group.add_argument("--cuda-only", action="store_true")
    group.add_argument("--compare-adagrad", action="store_true")
    group.add_argument("--adagrad-child", choices=("private", "torch.optim"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.adagrad_child:
        return _adagrad_child(args.adagrad_child)
    if args.compare_adagrad:
        return compare_adagrad(args.repeats)
    if not args.cuda_only:
        cpu_benchmark(args.repeats)
    if not args.cpu_only:
        if torch.cuda.is_available():
            cuda_benchmark()
        else:
            print("CUDA benchmark skipped: torch sees no CUDA device")


if __name__ == "__main__":
    main()
