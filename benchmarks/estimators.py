"""Compare the estimators of T on the same probabilities: the paper's (97%-percentile and argmax anchors)
and cleanlab's confident joint.

Probabilities are planted from a known T: each example's clean posterior is a softmax of a class score
(one-hot scaled by a confidence drawn per example, plus Gaussian logit noise), the noisy posterior
p(noisy | x) = p(y | x) T (eq. 11), and a "model error" perturbs its log-probabilities as an imperfect
network would. Noisy labels are drawn from T with pyrobust.noise.corrupt (confident joint uses them).
Estimators registered by plug-ins (pyrobust.register_estimator, entry points) are compared too.

    python benchmarks/estimators.py [--n 50000] [--model-error 0.3] [--seed 0] [--out FILE.csv]

Prints a table and writes one CSV row per (scenario, estimator): mae, max_row_l1 and wall time (ms).
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

import torch

from pyrobust import estimate_transition_matrix, estimation_error, list_estimators, noise
from pyrobust._io import write_text

SCENARIOS = {
    "mnist asym N=0.2": ("mnist", "asymmetric", 0.2),
    "mnist asym N=0.6": ("mnist", "asymmetric", 0.6),
    "mnist sym N=0.2": ("mnist", "symmetric", 0.2),
    "cifar10 asym N=0.4": ("cifar10", "asymmetric", 0.4),
    "cifar100 asym N=0.4": ("cifar100", "asymmetric", 0.4),
    "imdb asym N=0.3": ("imdb", "asymmetric", 0.3),
}
#: The paper's two estimators and cleanlab's; :func:`estimators` adds every other registered one.
ESTIMATORS = {
    "percentile 0.97": dict(method="percentile", quantile=0.97),
    "argmax": dict(method="argmax"),
    "confident_joint": dict(method="confident_joint"),
}


def estimators() -> dict[str, dict]:
    """Row label -> keyword arguments of estimate_transition_matrix: :data:`ESTIMATORS`, then every other
    estimator of the registry (``pyrobust.register_estimator`` or a ``pyrobust.estimators`` entry point)."""
    known = {kwargs["method"] for kwargs in ESTIMATORS.values()}
    return {**ESTIMATORS, **{name: dict(method=name) for name in list_estimators() if name not in known}}


def planted_probabilities(T: torch.Tensor, n: int, model_error: float, seed: int):
    """(probs n x C float32, noisy labels n) with p(noisy | x) = p(y | x) T up to the model error."""
    g = torch.Generator().manual_seed(seed)
    C = T.shape[0]
    clean = torch.randint(0, C, (n,), generator=g)
    confidence = 8.0 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    gaussian = torch.randn(n, C, generator=g, dtype=torch.float64)
    logits = confidence * torch.nn.functional.one_hot(clean, C) + gaussian
    noisy_posterior = logits.softmax(dim=1) @ T
    model_noise = model_error * torch.randn(n, C, generator=g, dtype=torch.float64)
    perturbed = noisy_posterior.clamp_min(1e-12).log() + model_noise
    return perturbed.softmax(dim=1).float(), noise.corrupt(clean, T, seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=50_000, help="examples in X' (default 50000, CIFAR's train set)"
    )
    parser.add_argument("--model-error", type=float, default=0.3, help="std of the log-probability noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/estimators.csv"))
    args = parser.parse_args()

    rows = []
    setting = f"n = {args.n}, model error = {args.model_error}, seed = {args.seed}"
    print(f"{setting}; CPU threads = {torch.get_num_threads()}")
    print(f"{'scenario':<22}{'estimator':<18}{'mae':>10}{'max_row_l1':>12}{'ms':>10}")
    for scenario, (dataset, kind, N) in SCENARIOS.items():
        T = noise.transition_matrix_for(dataset, kind, N)
        probs, labels = planted_probabilities(T, args.n, args.model_error, args.seed)
        for estimator, kwargs in estimators().items():
            start = time.perf_counter()
            T_hat = estimate_transition_matrix(probs, labels=labels, **kwargs)
            elapsed_ms = 1e3 * (time.perf_counter() - start)
            error = estimation_error(T_hat, T)
            row = dict(scenario=scenario, estimator=estimator, n=args.n, model_error=args.model_error)
            rows.append(dict(row, seed=args.seed, **error, ms=elapsed_ms))
            mae, l1 = error["mae"], error["max_row_l1"]
            print(f"{scenario:<22}{estimator:<18}{mae:>10.4f}{l1:>12.4f}{elapsed_ms:>10.1f}")

    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(args.out, buffer.getvalue())  # atomic: a killed benchmark never leaves half a CSV
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
