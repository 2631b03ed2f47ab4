"""The command line of Clothing1M: ``python -m pyrobust.experiment.clothing1m train|estimate ...`` (also
``pyrobust clothing1m ...``, which hands its arguments here).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyrobust._io import write_json, write_npy
from pyrobust.experiment import distributed
from pyrobust.experiment.clothing1m.config import TRANSITIONS, Clothing1MConfig, load_config
from pyrobust.experiment.clothing1m.estimation import estimate
from pyrobust.experiment.clothing1m.train import train_clothing1m
from pyrobust.registry import get_method

__all__ = ["build_parser", "main"]

_PROG = "python -m pyrobust.experiment.clothing1m"


def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key.strip() not in Clothing1MConfig.keys():
            raise ValueError(f"--set expects key=value with key in: {', '.join(Clothing1MConfig.keys())}; got {item!r}")
        out[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return out


def _load_npy(path: str | os.PathLike[str], what: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{what}: {path}: not a .npy array ({err})") from None


def _train_command(args: argparse.Namespace) -> None:
    overrides = _parse_set(args.set)
    for key in ("data_root", "imagenet_weights", "init_checkpoint", "device", "workers"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.init_checkpoint is not None:
        overrides.setdefault("init", "checkpoint")
    config, options = load_config(args.config, args.run, overrides)
    out_dir = Path(args.out_dir) if args.out_dir else options["out_dir"]
    record_path = Path(args.record) if args.record else out_dir / f"{args.run}.json"
    checkpoint = Path(args.checkpoint) if args.checkpoint else out_dir / f"{args.run}.pt"
    save_probs = args.save_probs or (out_dir / f"{args.run}.probs.npy" if options["save_probs"] else None)
    T_hat = None
    if get_method(config.method).transition == "estimated":
        T_hat_path = args.T_hat or out_dir / f"T_hat-{config.estimator}.npy"
        T_hat = _load_npy(T_hat_path, "--T-hat")
    world = distributed.init(config.device)
    try:
        record = train_clothing1m(config, T_hat=T_hat, save_probs=save_probs, checkpoint=checkpoint, world=world,
                                  name=f"clothing1m/{args.run}")
        if world.is_main:
            write_json(record_path, record)
            print(f"{args.run}: test accuracy {record['test_accuracy']:.2f}% (best epoch {record['best_epoch']}/"
                  f"{record['epochs']}, {record['wall_time_s']:.0f} s, {world.size} process(es)) -> {record_path}",
                  flush=True)
    finally:
        distributed.shutdown(world)


def _estimate_command(args: argparse.Namespace) -> None:
    from pyrobust.data.clothing1m import load_clothing1m

    overrides = _parse_set(args.set)
    if args.data_root is not None:
        overrides["data_root"] = args.data_root
    if args.estimator is not None:
        overrides["estimator"] = args.estimator
    if args.quantile is not None:
        overrides["quantile"] = args.quantile
    config, options = load_config(args.config, args.run, overrides)
    out_dir = Path(args.out_dir) if args.out_dir else options["out_dir"]
    probs_path = args.probs or out_dir / f"{args.run}.probs.npy"
    out = Path(args.out) if args.out else out_dir / f"T_hat-{config.estimator}.npy"
    data = load_clothing1m(config.data_root)
    probs = _load_npy(probs_path, "--probs")
    T = data.transition_from_clean(TRANSITIONS[config.transition])
    T_hat, summary = estimate(probs, data.noisy_train.labels, estimator=config.estimator,
                              quantile=config.quantile, T=T)
    summary["probs"] = str(probs_path)
    write_npy(out, T_hat.numpy())
    write_json(out.with_suffix(".json"), summary)
    err = summary["estimation_error"]
    print(f"wrote {out} and {out.with_suffix('.json')}: error against T from the clean 50k: "
          + ", ".join(f"{k} {v:.4f}" for k, v in err.items()), flush=True)


def build_parser(prog: str = _PROG) -> argparse.ArgumentParser:
    """The command line of ``python -m pyrobust.experiment.clothing1m`` (``train``, ``estimate``); ``prog``
    names it in usage and errors (``pyrobust clothing1m`` when reached through the ``pyrobust`` command)."""
    parser = argparse.ArgumentParser(prog=prog, description="Clothing1M, Table 3 of Patrini et al. (CVPR 2017)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run of config/clothing1m.yaml (under torchrun: data-parallel)")
    # the run is positional: under torchrun an option named --run would clash with torchrun's --run-path
    p.add_argument("run", help="a run of the config file's `runs:` (e.g. forward_1m)")
    p.add_argument("--config", default="config/clothing1m.yaml", help="the YAML file (default: %(default)s)")
    p.add_argument("--out-dir", help="where outputs go by default (the file's out_dir)")
    p.add_argument("--record", help="the JSON record (default <out_dir>/<run>.json)")
    p.add_argument("--checkpoint", help="the kept weights (default <out_dir>/<run>.pt)")
    p.add_argument("--save-probs", help="softmax on the training set, .npy (default for runs with save_probs)")
    p.add_argument("--T-hat", dest="T_hat", help="T_hat .npy for *_est methods (default <out_dir>/T_hat-<estimator>.npy)")
    p.add_argument("--init-checkpoint", help="start from these weights (init=checkpoint)")
    p.add_argument("--imagenet-weights", help="the local ResNet-50 ImageNet state dict (config key imagenet_weights)")
    p.add_argument("--data-root", help="the data root holding clothing1m/ (config key data_root)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, help="DataLoader workers per process")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting (YAML value: lr=1e-4, lr_milestones=[5], augment=true)")
    p.set_defaults(func=_train_command)

    p = sub.add_parser("estimate", help="T_hat from the cross-entropy network's softmax on the noisy 1M")
    p.add_argument("run", nargs="?", default="ce_1m", help="the run whose softmax to use (default: %(default)s)")
    p.add_argument("--config", default="config/clothing1m.yaml", help="the YAML file (default: %(default)s)")
    p.add_argument("--out-dir", help="where outputs go by default (the file's out_dir)")
    p.add_argument("--probs", help="the .npy (default <out_dir>/<run>.probs.npy)")
    p.add_argument("--out", help="T_hat .npy (default <out_dir>/T_hat-<estimator>.npy; a .json beside it)")
    p.add_argument("--estimator", help="a registered estimator of T (default: the config's, percentile)")
    p.add_argument("--quantile", type=float, help="the percentile estimator's quantile (default 0.97)")
    p.add_argument("--data-root", help="the data root holding clothing1m/ (config key data_root)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any setting")
    p.set_defaults(func=_estimate_command)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = _PROG) -> int:
    """Entry point of ``python -m pyrobust.experiment.clothing1m`` and ``pyrobust clothing1m``; returns the
    exit status.

    A user error (``OSError``/``ValueError``: a missing file, a bad setting) prints one line
    ``<prog> <command>: error: ...`` on stderr and returns 2 (with ``PYROBUST_DEBUG=1``: the traceback).

    Raises:
        SystemExit: from argparse: ``--help`` (status 0), malformed arguments (status 2).
    """
    args = build_parser(prog).parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError) as err:
        if os.environ.get("PYROBUST_DEBUG"):
            raise
        sys.stdout.flush()
        rank = os.environ.get("RANK")
        where = f" [rank {rank}]" if rank not in (None, "0") else ""
        print(f"{prog} {args.command}{where}: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0
