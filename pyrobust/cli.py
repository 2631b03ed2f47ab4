"""The ``pyrobust`` command: ``fetch``, ``corrupt``, ``train``, ``estimate`` and ``report``.

A thin layer over the library and the experiment: it parses arguments, calls one function, and turns user
errors (a missing data set, a bad file, an unknown method) into a one-line message and exit status 2 (set
``PYROBUST_DEBUG=1`` to get the traceback instead). Each subcommand imports only what it needs; the
choices come from the torch-free catalogue (:mod:`pyrobust.registry`), so ``pyrobust --help`` imports no
torch.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyrobust.registry import Registry

#: Exit status for errors in the user's input (argparse uses the same).
USAGE_ERROR = 2

#: What reading a file that is missing, of another format, truncated or damaged raises (numpy, zipfile,
#: zlib, pickle, json and pandas readers; json's and pandas' errors and UnicodeDecodeError are
#: ValueErrors). Only caught around the reading of a named input (:func:`_reading`), where they can mean
#: nothing but a bad file; anywhere else a KeyError or EOFError is a bug and keeps its traceback.
_BAD_FILE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)


def _one_line(text: str) -> str:
    """``text`` on one line: a multi-line message (a list of files to download) joined with "; "."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    out = lines[0] if lines else ""
    for line in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + line
    return out


def _message(err: BaseException) -> str:
    """The one-line message of a user error: ``<file>: <problem>`` for an ``OSError`` naming a file."""
    if isinstance(err, OSError) and err.strerror:
        if err.filename is None:  # OSError(errno, message): the message without "[Errno 28] "
            return _one_line(err.strerror)
        # os.replace(tmp, dest) names both: the destination is the user's file
        name = err.filename2 if err.filename2 is not None else err.filename
        return _one_line(f"{os.fsdecode(name) if isinstance(name, bytes) else name}: {err.strerror}")
    if isinstance(err, UnicodeDecodeError):
        return f"not a text file (not {err.encoding.upper()}: {err.reason} at byte offset {err.start})"
    if isinstance(err, KeyError):
        return f"missing {err.args[0]!r}" if err.args else "missing key"
    return _one_line(str(err)) or type(err).__name__


@contextmanager
def _reading(path: str | os.PathLike[str], *also: type[BaseException]) -> Iterator[None]:
    """Read the input ``path`` inside: what the readers raise on a bad file (:data:`_BAD_FILE`, and the
    types in ``also``) becomes ``ValueError("<path>: <problem>")``, the path added unless the loader's
    message starts with it already."""
    try:
        yield
    except (*_BAD_FILE, *also) as err:
        message = _message(err)
        names = {os.fspath(path), str(Path(path)), os.path.abspath(path)}
        if not any(message.startswith(f"{name}: ") for name in names):
            message = f"{os.fspath(path)}: {message}"
        raise ValueError(message) from err


def _check_output(path: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Fail before any work (a training run) when ``path`` cannot be written as a file (or a directory
    with ``directory``): a directory (a file) is in the way, or an existing ancestor is not a directory."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise ValueError(f"{path}: is a directory")
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ValueError(f"{path}: {parent} is not a directory")
            break


def _load_probs(path: str, n: int, C: int, labels_path: str):
    """The softmax written by ``pyrobust train --save-probs``: a float (n, C) numpy array."""
    import numpy as np

    what = "the .npy array written by `pyrobust train --save-probs`"
    with _reading(path):
        with open(path, "rb") as file:
            magic = file.read(6)
        if magic != b"\x93NUMPY":
            kind = "an .npz archive" if magic.startswith(b"PK\x03\x04") else "not a .npy file"
            raise ValueError(f"{kind}; expected {what}")
        probs = np.load(path, allow_pickle=False)
    if probs.ndim != 2 or probs.shape != (n, C) or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"{path}: expected float probabilities of shape ({n}, {C}) for {labels_path}, got "
                         f"{probs.dtype} {probs.shape}")
    return probs


def _load_noisy_labels(path: str):
    from pyrobust.experiment.labels import NoisyLabels

    with _reading(path):
        return NoisyLabels.load(path)


def _fetch(args: argparse.Namespace) -> None:
    from pyrobust.data import fetch

    fetch(args.dataset, args.data_root, base_url=args.base_url, progress=not args.quiet)


def _corrupt(args: argparse.Namespace) -> None:
    from pyrobust.data import load
    from pyrobust.experiment.labels import corrupt_labels
    from pyrobust.noise import noise_rate

    if len(args.seed) != len(args.out):
        raise ValueError(f"give one --out per --seed: got {len(args.seed)} seeds and {len(args.out)} outputs")
    for out in args.out:
        _check_output(out)
    data = load(args.dataset, args.data_root)  # loaded once for all seeds: start-up dominates this command
    for seed, out in zip(args.seed, args.out):
        noisy = corrupt_labels(data, args.noise, args.N, seed)
        noisy.save(out)
        rate = noise_rate(data.y_train.numpy(), noisy.labels)
        print(f"wrote {out}: {len(noisy.labels)} {args.dataset} training labels, {args.noise} N={args.N}, "
              f"seed {seed}, {100 * rate:.1f}% flipped", flush=True)


def _train(args: argparse.Namespace) -> None:
    from pyrobust._io import write_json
    from pyrobust.experiment.config import TrainConfig
    from pyrobust.experiment.run import train_methods

    noisy = _load_noisy_labels(args.noisy_labels)
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
    T_hat = None
    if args.T_hat is not None:
        from pyrobust.noise import load_transition_matrix

        with _reading(args.T_hat):
            T_hat = load_transition_matrix(args.T_hat)
        if T_hat.shape != noisy.T.shape:
            raise ValueError(f"{args.T_hat}: a {T_hat.shape[0]} x {T_hat.shape[0]} matrix, but {args.noisy_labels} "
                             f"has {noisy.T.shape[0]} classes")
    out_dir = Path(args.out_dir)
    _check_output(out_dir, directory=True)  # before a training run, not after it
    if args.save_probs is not None:
        _check_output(args.save_probs)

    def save(record: dict) -> None:
        path = out_dir / f"{record['method']}.json"
        write_json(path, record)
        print(f"{record['method']}: test accuracy {record['test_accuracy']:.2f}% "
              f"(best epoch {record['best_epoch']}/{record['epochs']}, {record['wall_time_s']:.1f} s) -> {path}",
              flush=True)

    train_methods(config, args.method, noisy=noisy, T_hat=T_hat, save_probs=args.save_probs,
                  data_root=args.data_root, on_result=save)


def _estimate(args: argparse.Namespace) -> None:
    import torch

    from pyrobust._io import write_json, write_npy
    from pyrobust.estimate import estimate_transition_matrix, estimation_error

    noisy = _load_noisy_labels(args.noisy_labels)
    out = Path(args.out)
    _check_output(out)
    _check_output(out.with_suffix(".json"))
    C = noisy.T.shape[0]
    probs = _load_probs(args.probs, len(noisy.labels), C, args.noisy_labels)
    method = "argmax" if args.argmax else args.estimator
    T_hat = estimate_transition_matrix(torch.from_numpy(probs), args.quantile, method=method,
                                       labels=torch.from_numpy(noisy.labels))
    T_hat = torch.as_tensor(T_hat, dtype=torch.float64)
    error = {k: float(v) for k, v in estimation_error(T_hat, torch.from_numpy(noisy.T)).items()}
    write_npy(out, T_hat.numpy())
    summary = {"dataset": noisy.dataset, "noise": noisy.noise, "N": noisy.N, "seed": noisy.seed,
               "method": method, "quantile": args.quantile if method == "percentile" else None,
               "T_hat": T_hat.tolist(), "T": noisy.T.tolist(), "estimation_error": error}
    write_json(out.with_suffix(".json"), summary)
    print(f"wrote {out} and {out.with_suffix('.json')}: " + ", ".join(f"{k} {v:.4f}" for k, v in error.items()),
          flush=True)


#: The columns of the paper's CSV that every row must fill (``std`` is empty for a single run).
_PAPER_FILLED = ["dataset", "model", "method", "noise", "N", "accuracy", "runs"]


def _check_records(results: str) -> None:
    """Read the result records once, so that a bad one is reported by its file name.

    The records are read all at once (one pass, the usual case); when that fails, one by one, to name the
    culprit. A record's values of the wrong type (null where a number goes) raise TypeError in the
    loader, a user error here only. An error no single file causes (the same run recorded twice) is the
    loader's own, which names the files.
    """
    from pyrobust.experiment.records import load_records

    try:
        runs = load_records(results)
    except (*_BAD_FILE, TypeError):
        root = Path(results)
        for path in sorted(root.rglob("*.json")) if root.is_dir() else [root]:
            with _reading(path, TypeError):
                load_records(path)
        raise
    if Path(results).is_file() and runs.empty:
        raise ValueError(f"{results}: not a result record written by `pyrobust train` (no test_accuracy)")


def _check_paper(paper_csv: str) -> None:
    """The paper's Table 2 CSV, read once to name it in any error; a row with an empty required field (a
    file cut short) is an error, not a cell without the paper's number."""
    from pyrobust.experiment.table import load_paper

    with _reading(paper_csv):
        paper = load_paper(paper_csv)
        empty = paper[_PAPER_FILLED].isna()
        if empty.any(axis=None):
            row = int(empty.any(axis=1).to_numpy().argmax())
            columns = [c for c in _PAPER_FILLED if empty.iloc[row][c]]
            raise ValueError(f"line {row + 2} has no {', '.join(columns)} (is the file cut short?)")


def _report(args: argparse.Namespace) -> None:
    from pyrobust.experiment.report import write_reports

    _check_records(args.results)
    if args.paper is not None:
        _check_paper(args.paper)
    _check_output(args.out_dir, directory=True)
    written = write_reports(args.results, args.out_dir, paper_csv=args.paper, missing=tuple(args.missing))
    for path in written.values():
        print(f"wrote {path}", flush=True)


def _registered(kind: Registry) -> Callable[[str], str]:
    """An argparse ``type`` accepting the names of ``kind``; a plug-in is loaded only when it is named."""

    def check(name: str) -> str:
        try:
            kind.get(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return name

    check.__name__ = kind.kind  # argparse names the type in its error: "invalid method value"
    return check


def _listed(kind: Registry) -> str:
    return f"{', '.join(kind.names(plugins=False))}, or a plug-in's"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every name comes from the catalogue, none from a list of its own.

    Built without importing torch or any plug-in (so ``pyrobust --help`` is instant): a plug-in's name is
    looked up, and its entry point loaded, only when it is given.
    """
    from pyrobust._version import __version__
    from pyrobust.catalog import NETWORKS, NOISE_KINDS
    from pyrobust.registry import DATASETS, ESTIMATORS, METHODS

    dataset = dict(type=_registered(DATASETS), metavar="DATASET")
    parser = argparse.ArgumentParser(
        prog="pyrobust",
        description="Loss correction for deep networks with noisy labels (Patrini et al., CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", help="download a data set (checksummed) into the data root")
    p.add_argument("dataset", help=f"a registered data set ({_listed(DATASETS)})", **dataset)
    p.add_argument("--data-root", help="data directory (default: $PYROBUST_DATA or ./data)")
    p.add_argument("--base-url", help="mirror to download from instead of the canonical URL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fetch)

    p = sub.add_parser("corrupt", help="corrupt the training labels with the paper's T (writes an .npz)")
    p.add_argument("--dataset", required=True, help=f"a registered data set ({_listed(DATASETS)})", **dataset)
    p.add_argument("--noise", required=True, choices=tuple(NOISE_KINDS))
    p.add_argument("--N", type=float, required=True, help="noise level in [0, 1] (section 5.1)")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one or more seeds")
    p.add_argument("--out", nargs="+", required=True, help="output .npz per seed: noisy labels and T")
    p.add_argument("--data-root")
    p.set_defaults(func=_corrupt)

    p = sub.add_parser("train", help="train one Table 2 cell per --method; writes OUT_DIR/<method>.json")
    p.add_argument("--dataset", help="default: the data set of --noisy-labels", **dataset)
    p.add_argument("--model", choices=tuple(NETWORKS), help="the network (default: the paper's for the data set)")
    p.add_argument("--method", action="append", required=True, type=_registered(METHODS), metavar="METHOD",
                   help=f"a registered method ({_listed(METHODS)}); repeat for several")
    p.add_argument("--noisy-labels", required=True, help=".npz written by `pyrobust corrupt`")
    p.add_argument("--seed", type=int, required=True, help="seed of the split, the init and the batch order")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--T-hat", dest="T_hat", help="T_hat.npy from `pyrobust estimate` (forward_est, backward_est)")
    p.add_argument("--save-probs", help="write the cross_entropy net's softmax on train+val inputs to this .npy")
    p.add_argument("--epochs", type=int)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--data-root")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any training setting (e.g. lr=0.1, lr_milestones=40,80, dropout=0.2)")
    p.set_defaults(func=_train)

    p = sub.add_parser("estimate", help="estimate T_hat from the cross_entropy net's probabilities (Eq. 12-13)")
    p.add_argument("--probs", required=True, help=".npy written by `pyrobust train --save-probs`")
    p.add_argument("--noisy-labels", required=True, help="the .npz the network was trained on (holds the true T)")
    p.add_argument("--out", required=True, help="T_hat .npy; its error against T goes to the same name .json")
    p.add_argument("--estimator", type=_registered(ESTIMATORS), default="percentile", metavar="ESTIMATOR",
                   help=f"a registered estimator of T ({_listed(ESTIMATORS)}; default: percentile, the paper's)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--quantile", type=float, default=0.97, help="alpha-percentile (default 0.97, the paper's)")
    how.add_argument("--argmax", action="store_true", help="--estimator argmax (the paper's choice for CIFAR-100)")
    p.set_defaults(func=_estimate)

    p = sub.add_parser("report", help="aggregate result records into Table 2 (csv, markdown, figures)")
    p.add_argument("--results", required=True, help="directory holding the <method>.json records")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--paper", help="the paper's Table 2 as CSV, to print side by side")
    p.add_argument("--missing", nargs="*", default=[], metavar="NAME", help="data sets to list as missing")
    p.set_defaults(func=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrobust`` console script; returns the exit status (0, or 2 for a user error).

    A user error (a missing or malformed file, an unknown name, an invalid setting: ``OSError`` or
    ``ValueError``) prints one line ``pyrobust <command>: error: ...`` on stderr; set ``PYROBUST_DEBUG=1``
    to get the traceback instead. argparse errors exit through ``SystemExit(2)``.

    Raises:
        SystemExit: from argparse, for ``--help``, ``--version`` and malformed arguments.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError) as err:  # missing/bad files, unknown names, invalid settings
        # Only these: the readers of the inputs turn what a bad file raises into them (_reading), so
        # that any other exception is a bug and keeps its traceback.
        if os.environ.get("PYROBUST_DEBUG"):
            raise
        sys.stdout.flush()  # what was printed before comes first in a log of both streams
        print(f"pyrobust {args.command}: error: {_message(err)}", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
