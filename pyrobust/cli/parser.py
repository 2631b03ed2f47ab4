"""The argument parser of ``pyrobust`` (:func:`build_parser`), built from the torch-free catalogue."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from pyrobust.cli.commands import run_corrupt, run_estimate, run_fetch, run_report, run_train

if TYPE_CHECKING:
    from pyrobust.registry import Registry

__all__ = ["build_parser"]


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


def _fetchable(kind: Registry, files: Collection[str]) -> Callable[[str], str]:
    """An argparse ``type`` accepting the names of ``kind`` and the sets of label files ``files``."""
    registered = _registered(kind)

    def check(name: str) -> str:
        return name if name in files else registered(name)

    check.__name__ = kind.kind
    return check


def _listed(kind: Registry) -> str:
    return f"{', '.join(kind.names(plugins=False))}, or a plug-in's"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every name comes from the catalogue, none from a list of its own.

    Built without importing torch or any plug-in (so ``pyrobust --help`` is instant): a plug-in's name is
    looked up, and its entry point loaded, only when it is given.
    """
    from pyrobust._version import __version__
    from pyrobust.catalog import HUMAN_NOISE, LABEL_FILES, NETWORKS, NOISE_KINDS
    from pyrobust.registry import DATASETS, ESTIMATORS, METHODS

    dataset = dict(type=_registered(DATASETS), metavar="DATASET")
    parser = argparse.ArgumentParser(
        prog="pyrobust",
        description="Loss correction for deep networks with noisy labels (Patrini et al., CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", help="download a data set (checksummed) into the data root")
    p.add_argument("dataset", type=_fetchable(DATASETS, LABEL_FILES), metavar="DATASET",
                   help=f"a registered data set ({_listed(DATASETS)}), or the CIFAR-N human labels of "
                        f"CIFAR-10/100 ({', '.join(LABEL_FILES)})"),
    p.add_argument("--data-root", help="data directory (default: $PYROBUST_DATA or ./data)")
    p.add_argument("--base-url", help="mirror to download from instead of the canonical URL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_fetch)

    p = sub.add_parser("corrupt", help="corrupt the training labels with the paper's T (writes an .npz)")
    p.add_argument("--dataset", required=True, help=f"a registered data set ({_listed(DATASETS)})", **dataset)
    p.add_argument("--noise", required=True, choices=tuple(NOISE_KINDS),
                   help=f"injected noise, or CIFAR-N's human labels as they are ({', '.join(HUMAN_NOISE)}: "
                        "read from the data root, their T counted from the clean labels)")
    p.add_argument("--N", type=float, required=True, help="noise level in [0, 1] (section 5.1); 0 for human noise")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one or more seeds")
    p.add_argument("--out", nargs="+", required=True, help="output .npz per seed: noisy labels and T")
    p.add_argument("--data-root")
    p.set_defaults(func=run_corrupt)

    p = sub.add_parser("train", help="train one Table 2 cell per --method; writes OUT_DIR/<method>.json")
    p.add_argument("--dataset", help="default: the data set of --noisy-labels", **dataset)
    p.add_argument("--model", choices=tuple(NETWORKS), help="the network (default: the paper's for the data set)")
    p.add_argument("--method", action="append", required=True, type=_registered(METHODS), metavar="METHOD",
                   help=f"a registered method ({_listed(METHODS)}); repeat for several")
    p.add_argument("--noisy-labels", required=True, help=".npz written by `pyrobust corrupt`")
    p.add_argument("--seed", type=int, required=True, help="seed of the split, the init and the batch order")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--T-hat", dest="T_hat", action="append", default=[], metavar="[ESTIMATOR=]FILE",
                   help="T_hat .npy from `pyrobust estimate`: plain, the data set's own estimator's (forward_est, "
                        "backward_est, t_revision); ESTIMATOR=FILE, that estimator's (forward_dual_t, ...); "
                        "repeat for several")
    p.add_argument("--save-probs", help="write the cross_entropy net's softmax on train+val inputs to this .npy")
    p.add_argument("--epochs", type=int)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--data-root")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any training setting (e.g. lr=0.1, lr_milestones=40,80, dropout=0.2)")
    p.set_defaults(func=run_train)

    p = sub.add_parser("estimate", help="estimate T_hat from a network's noisy class probabilities",
                       description="T_hat from the softmax p(noisy | x) of a network trained on the noisy labels, "
                                   "by one or more estimators; the error against the true T is reported when "
                                   "it is known (--noisy-labels, or --T).")
    p.add_argument("--probs", required=True,
                   help="n x C probabilities: .npy (e.g. from `pyrobust train --save-probs`) or .csv")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--noisy-labels", help="the .npz of `pyrobust corrupt` the network was trained on "
                                               "(its labels and true T)")
    labels.add_argument("--labels", help="the n noisy labels, .npy or .csv (for estimators that read them)")
    p.add_argument("--T", help="the true T (.npy or .csv, C x C), optional: only to report the error")
    p.add_argument("--out", nargs="+", required=True,
                   help="T_hat .npy per estimator, in order; each one's summary goes to the same name .json")
    p.add_argument("--estimator", action="append", type=_registered(ESTIMATORS), metavar="ESTIMATOR",
                   help=f"a registered estimator of T ({_listed(ESTIMATORS)}); repeat for several "
                        "(default: percentile, the paper's)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--quantile", type=float, default=0.97, help="alpha-percentile (default 0.97, the paper's)")
    how.add_argument("--argmax", action="store_true", help="--estimator argmax (the paper's choice for CIFAR-100)")
    p.set_defaults(func=run_estimate)

    p = sub.add_parser("report", help="aggregate result records into Table 2 (csv, markdown, figures)")
    p.add_argument("--results", required=True, help="directory holding the <method>.json records")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--paper", help="the paper's Table 2 as CSV, to print side by side")
    p.add_argument("--missing", nargs="*", default=[], metavar="NAME", help="data sets to list as missing")
    p.set_defaults(func=run_report)

    # Clothing1M's own parser (in pyrobust.experiment.clothing1m, which imports torch) reads everything
    # after the subcommand as given, its --help included: main() hands it over before parsing further.
    p = sub.add_parser("clothing1m", add_help=False,
                       help="Clothing1M, Table 3: train | estimate (see `pyrobust clothing1m --help`)",
                       description="The arguments of `python -m pyrobust.experiment.clothing1m`, passed unchanged.")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="e.g. train forward_1m --config config/clothing1m.yaml")
    return parser
