"""Training speed of ``pyrobust.train`` (run: ``python benchmarks/train_speed.py [--cuda-only|--cpu-only]``).

1. MNIST-5k, fully connected net, 40 epochs (the paper's schedule), ``forward`` and ``cross_entropy``, on
   one CPU thread. Target: <= 2 s per run. Printed side by side with a bare PyTorch loop doing the same
   work (same net, AdaGrad, batch 128, same epochs, ``F.cross_entropy``, one validation pass per epoch),
   so the ratio shows what the trainer adds over the minimum.
2. When CUDA is available: one epoch of ResNet-14 on CIFAR-shaped random data (50,000 x 3 x 32 x 32,
   batch 128, bf16 autocast, channels_last, crop + flip augmentation, validation on 5,000).
   Target: <= 4 s per epoch on an H100.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pyrobust.data import load
from pyrobust.models import build_model
from pyrobust.train import NoisyLabels, TrainConfig, corrupt_labels, train_methods


def bare_loop(data, noisy: NoisyLabels, epochs: int) -> tuple[float, float]:
    """The minimum: the same net and optimiser in a plain loop. Returns (wall, CPU) seconds."""
    torch.manual_seed(0)
    x, y = data.x_train, torch.from_numpy(noisy.labels)
    perm = torch.randperm(len(y))
    val, tr = perm[: len(y) // 10], perm[len(y) // 10 :]
    model = build_model("fc", 10)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.01, eps=1e-6)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for s in range(0, len(order), 128):
            idx = order[s : s + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(x[val]), y[val]).item()
    return time.perf_counter() - start, time.process_time() - cpu


def cpu_benchmark(repeats: int) -> None:
    torch.set_num_threads(1)
    data = load("mnist5k")
    noisy = corrupt_labels(data, "asymmetric", 0.6, seed=0)
    config = TrainConfig.paper("mnist5k", "cross_entropy", noise="asymmetric", N=0.6, threads=1, device="cpu")
    print(f"MNIST-5k fc, {config.epochs} epochs, 1 CPU thread ({len(data.y_train)} train+val examples); best of "
          f"{repeats}. CPU time is what a run costs on a shared machine; wall time is what it costs alone.")
    bare_wall, bare_cpu = min(bare_loop(data, noisy, config.epochs) for _ in range(repeats))
    print(f"  bare PyTorch loop       wall {bare_wall:6.2f} s  CPU {bare_cpu:6.2f} s")
    for method in ("cross_entropy", "forward"):
        times = []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            record = train_methods(config, [method], data=data, noisy=noisy, progress=False)[0]
            times.append((time.perf_counter() - start, time.process_time() - cpu))
        wall, cpu = min(times)
        verdict = "ok" if cpu <= 2.0 else "above the 2 s target"
        print(f"  pyrobust {method:<14} wall {wall:6.2f} s  CPU {cpu:6.2f} s  ({cpu / bare_cpu:.2f}x bare CPU; "
              f"{cpu / config.epochs * 1000:.0f} ms/epoch; test acc {record['test_accuracy']:.1f}%)  "
              f"target <= 2 s: {verdict}")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cpu-only", action="store_true")
    group.add_argument("--cuda-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.cuda_only:
        cpu_benchmark(args.repeats)
    if not args.cpu_only:
        if torch.cuda.is_available():
            cuda_benchmark()
        else:
            print("CUDA benchmark skipped: torch sees no CUDA device")


if __name__ == "__main__":
    main()
