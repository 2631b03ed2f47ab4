"""What each subcommand of ``pyrobust`` does, given its parsed arguments; each imports only what it needs
(torch only once it runs).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pyrobust.cli.errors import check_output, reading
from pyrobust.cli.inputs import check_paper, check_records, load_array, load_noisy_labels, load_probs

__all__ = ["run_clothing1m", "run_corrupt", "run_estimate", "run_fetch", "run_report", "run_train"]


def run_fetch(args: argparse.Namespace) -> None:
    """``pyrobust fetch``: download a data set into the data root."""
    from pyrobust.data import fetch

    fetch(args.dataset, args.data_root, base_url=args.base_url, progress=not args.quiet)


def run_corrupt(args: argparse.Namespace) -> None:
    """``pyrobust corrupt``: one noisy-label ``.npz`` per seed."""
    from pyrobust.data import load
    from pyrobust.experiment.labels import corrupt_labels
    from pyrobust.noise import noise_rate

    if len(args.seed) != len(args.out):
        raise ValueError(f"give one --out per --seed: got {len(args.seed)} seeds and {len(args.out)} outputs")
    for out in args.out:
        check_output(out)
    data = load(args.dataset, args.data_root)  # loaded once for all seeds: start-up dominates this command
    for seed, out in zip(args.seed, args.out):
        noisy = corrupt_labels(data, args.noise, args.N, seed, data_root=args.data_root)
        noisy.save(out)
        rate = noise_rate(data.y_train.numpy(), noisy.labels)
        print(f"wrote {out}: {len(noisy.labels)} {args.dataset} training labels, {args.noise} N={args.N}, "
              f"seed {seed}, {100 * rate:.1f}% flipped", flush=True)


def run_train(args: argparse.Namespace) -> None:
    """``pyrobust train``: one Table 2 cell per ``--method``, a JSON record each."""
    from pyrobust._io import write_json
    from pyrobust.experiment.config import TrainConfig
    from pyrobust.experiment.run import train_methods

    noisy = load_noisy_labels(args.noisy_labels)
    overrides = dict(TrainConfig.parse_override(s) for s in args.set)
    fixed = {"dataset": "--dataset", "method": "--method", "seed": "--seed", "noise": "--noisy-labels",
             "N": "--noisy-labels"}
    for key in overrides.keys() & fixed.keys():
        raise ValueError(f"--set {key}=...: {key} is given by {fixed[key]}")
    for key, value in (("epochs", args.epochs), ("threads", args.threads), ("device", args.device),
                       ("model", args.model)):
        if value is not None:
            overrides[key] = value
    config = TrainConfig.paper(noisy.dataset if args.dataset is None else args.dataset, args.method[0],
                               noise=noisy.noise, N=noisy.N, seed=args.seed, **overrides)
    from pyrobust.noise import load_transition_matrix
    from pyrobust.registry import ESTIMATORS, get_dataset

    own_estimator = get_dataset(config.dataset).estimator

    T_hat = {}
    for given in args.T_hat:
        name, sep, path = given.partition("=")
        estimator, path = (name, path) if sep and name.isidentifier() else (None, given)
        if not path:
            raise ValueError(f"--T-hat {given}: no file after '='")
        if estimator == own_estimator:  # the data set's own estimator: the plain --T-hat FILE
            estimator = None
        if estimator is not None and estimator not in ESTIMATORS:
            raise ValueError(f"--T-hat {given}: unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
        if estimator in T_hat:
            raise ValueError(f"--T-hat given twice for {estimator or 'the data set own estimator'}")
        with reading(path):
            T_hat[estimator] = load_transition_matrix(path)
        if T_hat[estimator].shape != noisy.T.shape:
            raise ValueError(f"{path}: a {T_hat[estimator].shape[0]} x {T_hat[estimator].shape[0]} matrix, but "
                             f"{args.noisy_labels} has {noisy.T.shape[0]} classes")
    out_dir = Path(args.out_dir)
    check_output(out_dir, directory=True)  # before a training run, not after it
    if args.save_probs is not None:
        check_output(args.save_probs)

    def save(record: dict) -> None:
        path = out_dir / f"{record['method']}.json"
        write_json(path, record)
        print(f"{record['method']}: test accuracy {record['test_accuracy']:.2f}% "
              f"(best epoch {record['best_epoch']}/{record['epochs']}, {record['wall_time_s']:.1f} s) -> {path}",
              flush=True)

    train_methods(config, args.method, noisy=noisy, T_hat=T_hat or None, save_probs=args.save_probs,
                  data_root=args.data_root, on_result=save)


def run_estimate(args: argparse.Namespace) -> None:
    """``pyrobust estimate``: ``T_hat`` from a softmax, one per ``--estimator``, each with its error against the
    true ``T`` when one is known (from ``--noisy-labels`` or ``--T``)."""
    import torch

    from pyrobust._io import write_json, write_npy
    from pyrobust.estimate import estimate_transition_matrix, estimation_error

    if args.argmax and args.estimator:
        raise ValueError("--argmax is --estimator argmax: give one or the other")
    estimators = ["argmax"] if args.argmax else (args.estimator or ["percentile"])
    if len(args.out) != len(estimators):
        raise ValueError(f"{len(estimators)} estimator(s) ({', '.join(estimators)}) but {len(args.out)} --out "
                         "file(s): give one --out per --estimator, in the same order")
    outs = [Path(out) for out in args.out]
    for out in outs:
        check_output(out)
        if out.suffix != ".npy":  # its summary goes beside it as .json
            raise ValueError(f"{out}: T_hat is written as .npy (its summary beside it as .json)")
        check_output(out.with_suffix(".json"))
    if len(set(outs)) < len(outs):
        raise ValueError(f"--out {' '.join(map(str, outs))}: each estimator needs a file of its own")
    if args.noisy_labels is not None:
        noisy = load_noisy_labels(args.noisy_labels)
        labels, T, C, source = noisy.labels, noisy.T, noisy.T.shape[0], args.noisy_labels
        about = {"dataset": noisy.dataset, "noise": noisy.noise, "N": noisy.N, "seed": noisy.seed}
    else:
        labels = None if args.labels is None else load_array(args.labels, "labels")
        T = None if args.T is None else load_array(args.T, "T")
        C, source, about = None, args.labels, {}
    if labels is not None and labels.ndim != 1:
        raise ValueError(f"{source}: labels must be one column of class indices, got shape {labels.shape}")
    probs = load_probs(args.probs, None if labels is None else len(labels), C, source)
    if T is not None and T.shape != (probs.shape[1],) * 2:
        raise ValueError(f"{args.T}: a {' x '.join(map(str, T.shape))} matrix, but {args.probs} has "
                         f"{probs.shape[1]} classes")
    for method, out in zip(estimators, outs):
        inputs = ", ".join(str(f) for f in (args.probs, source) if f is not None)
        try:  # a problem of the inputs (a class out of range, ...) is named with their files
            T_hat = estimate_transition_matrix(torch.from_numpy(probs), args.quantile, method=method,
                                               labels=None if labels is None else torch.from_numpy(labels))
        except ValueError as error:
            raise ValueError(f"{inputs}: {error}") from error
        T_hat = torch.as_tensor(T_hat, dtype=torch.float64)
        error = None if T is None else {
            k: float(v) for k, v in estimation_error(T_hat, torch.as_tensor(T, dtype=torch.float64)).items()
        }
        write_npy(out, T_hat.numpy())
        summary = {**about, "method": method, "quantile": args.quantile if method == "percentile" else None,
                   "T_hat": T_hat.tolist(), "T": None if T is None else T.tolist(), "estimation_error": error}
        write_json(out.with_suffix(".json"), summary)
        told = "no true T given" if error is None else ", ".join(f"{k} {v:.4f}" for k, v in error.items())
        print(f"{method}: wrote {out} and {out.with_suffix('.json')}: {told}", flush=True)


def run_report(args: argparse.Namespace) -> None:
    """``pyrobust report``: Table 2 (csv, markdown, figures) from the result records."""
    from pyrobust.experiment.report import write_reports

    check_records(args.results)
    if args.paper is not None:
        check_paper(args.paper)
    check_output(args.out_dir, directory=True)
    written = write_reports(args.results, args.out_dir, paper_csv=args.paper, missing=tuple(args.missing))
    for path in written.values():
        print(f"wrote {path}", flush=True)



def run_clothing1m(argv: Sequence[str]) -> int:
    """``pyrobust clothing1m ARGS``: ``python -m pyrobust.experiment.clothing1m ARGS`` (Table 3), its
    arguments passed unchanged; returns its exit status (2 for a user error, after its one-line message).

    Raises:
        SystemExit: from its argparse: ``--help`` (status 0), malformed arguments (status 2).
    """
    from pyrobust.experiment.clothing1m import main

    return main(list(argv), prog="pyrobust clothing1m")
