"""Training one Clothing1M network (section 5.3) and building its record: :func:`train_clothing1m`."""

from __future__ import annotations

import copy
import math
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrobust._checks import check_transition_matrix
from pyrobust._io import write_npy
from pyrobust.experiment import distributed
from pyrobust.experiment.clothing1m.checkpoints import load_checkpoint, save_checkpoint
from pyrobust.experiment.clothing1m.config import NUM_CLASSES, TRAINING_SETS, TRANSITIONS, Clothing1MConfig
from pyrobust.experiment.images import evaluate_loader, fit_loader, probabilities_loader
from pyrobust.experiment.loop import derived_seed
from pyrobust.registry import get_method

__all__ = ["train_clothing1m"]


def _with_transform(files: Any, transform: Any) -> Any:
    """A shallow copy of an ``ImageFiles`` split with another transform (the paths are shared)."""
    out = copy.copy(files)
    out.transform = transform
    return out


def _check_init(config: Clothing1MConfig) -> None:
    """Fail early (before indexing a million images) when the file the weights start from is not set or
    missing; the message names the config key."""
    if config.init == "imagenet":
        key, path, hint = "imagenet_weights", config.imagenet_weights, (
            "a local ResNet-50 ImageNet state dict, e.g. torchvision's resnet50-0676ba61.pth from "
            "https://download.pytorch.org/models/; nothing is downloaded at training time")
    elif config.init == "checkpoint":
        key, path, hint = "init_checkpoint", config.init_checkpoint, "the checkpoint (.pt) of an earlier run"
    else:
        return
    if not path:
        raise ValueError(f"{key} (config key) is not set: give the path of {hint}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key} (config key): {path} does not exist ({hint})")


def _build_network(config: Clothing1MConfig, bn_head: bool) -> nn.Module:
    """The network, initialised as ``config.init`` says, from torch's generator seeded by the run's seed."""
    from pyrobust.models import build_model, load_resnet50_weights

    _check_init(config)
    torch.manual_seed(derived_seed(config.seed, "init"))
    model = build_model(config.model, NUM_CLASSES)
    if config.init == "imagenet":
        load_resnet50_weights(model, config.imagenet_weights, head="replace",  # type: ignore[arg-type]
                              what="imagenet_weights (config key)")
    if bn_head:
        model = nn.Sequential(model, nn.BatchNorm1d(NUM_CLASSES))
    if config.init == "checkpoint":
        load_checkpoint(model, config.init_checkpoint, what="init_checkpoint (config key)")
    return model


def _T_source(config: Clothing1MConfig, transition: str | None) -> str | None:
    if transition == "true":
        return {"clean_train": "clean 50k", "clean_all": "clean (all)"}[config.transition]
    if transition == "estimated":
        return f"estimated ({config.estimator})"
    return None


def train_clothing1m(
    config: Clothing1MConfig,
    *,
    data: Any = None,
    T_hat: Any = None,
    save_probs: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    world: distributed.World | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Train one Clothing1M network (section 5.3) and return its record; every process returns it.

    Args:
        config: the run's settings.
        data: a loaded :class:`pyrobust.data.clothing1m.Clothing1M` (default:
            ``load_clothing1m(config.data_root)``); its splits get the transforms of ``config`` (resize,
            crop, and random crop + flip on the training set if ``config.augment``).
        T_hat: ``14 x 14`` array-like, the estimate of ``T`` for the ``*_est`` methods (:func:`estimate`).
        save_probs: write the softmax of the kept network on the whole training set (evaluation transform,
            float32 ``n x 14`` ``.npy``, the split's order) there: the estimators' input.
        checkpoint: write the kept weights there (:func:`save_checkpoint`; Table 3's #8 starts from #6's).
        world: the process group (default: :func:`pyrobust.experiment.distributed.init` with
            ``config.device``, left again on return).
        name: the prefix of the log lines (default ``clothing1m/<model>/<method> <1M|50k>``).

    Returns:
        The record (rank 0 writes it; the keys of ``pyrobust.experiment.run.make_record`` where they
        apply): ``dataset`` ("clothing1m"), ``model``, ``method``, ``noise`` ("real": the web labels),
        ``N`` (null: no parameter), ``seed``, ``test_accuracy`` (percent, clean 10k, kept weights) and
        ``test_loss`` (nats), ``best_epoch``, ``epochs``, per-epoch ``val_loss`` (cross-entropy on the clean
        14k), ``val_accuracy`` (percent), ``train_loss`` and ``lr``, ``selection``, ``T`` (counted from the
        clean training images, the reference), ``T_hat`` and its ``estimation_error`` against ``T`` (or
        null), ``identity_mix``, ``realised_noise_rate`` (fraction of the clean training images whose noisy
        label differs), ``sizes``, ``wall_time_s``, ``device``, ``threads``, ``versions``, ``config``; and
        for Table 3: ``table3_row``, ``training_set`` ("1M" or "50k"), ``init``, ``T_source``,
        ``world_size``, ``global_batch_size``, ``steps``.

    Raises:
        ValueError: ``T_hat`` missing for a ``*_est`` method or not a ``14 x 14`` transition matrix, an
            unset or wrong weights file (named with its config key), or as :func:`fit_loader`.
        FileNotFoundError: the data set or a weights file is missing (the message names it).
    """
    from pyrobust.data.clothing1m import load_clothing1m
    from pyrobust.data.images import ImageTransform
    from pyrobust.experiment.run import _finite_or_none, _versions, make_loss

    started = time.perf_counter()
    method = get_method(config.method)
    if method.transition == "estimated" and T_hat is None:
        raise ValueError(f"{config.method} needs an estimated T_hat (`estimate`, then --T-hat)")
    own_world = world is None
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    _check_init(config)
    world = distributed.init(config.device) if world is None else world
    try:
        if data is None:
            data = load_clothing1m(config.data_root)
        eval_t = ImageTransform.eval(config.resize, config.crop)
        train_t = ImageTransform.train(config.resize, config.crop) if config.augment else eval_t
        split = data.split("noisy_train" if config.train_set == "noisy" else "clean_train")
        train_set = _with_transform(split, train_t)
        val_set, test_set = _with_transform(data.clean_val, eval_t), _with_transform(data.clean_test, eval_t)

        keep = data.overlap_split == "clean_train"
        realised = float(np.mean(data.overlap_noisy[keep] != data.overlap_clean[keep])) if keep.any() else None
        try:
            T = data.transition_from_clean(TRANSITIONS[config.transition])
        except ValueError:
            if method.transition == "true":
                raise
            T = None  # a class without a doubly labelled image: no reference T (only a partial data set)
        error = None
        if T_hat is not None:
            from pyrobust.estimate import estimation_error

            T_hat = check_transition_matrix(torch.as_tensor(np.asarray(T_hat), dtype=torch.float64), NUM_CLASSES,
                                            name="T_hat")
            error = None if T is None else {k: float(v) for k, v in estimation_error(T_hat, T).items()}

        model = _build_network(config, method.bn_head).to(world.device)
        if config.batch_norm == "global":
            model = distributed.global_batch_norm(model, world)
        T_used = {None: None, "true": T, "estimated": T_hat}[method.transition]
        loss_fn, mix = make_loss(method, T_used, config)  # type: ignore[arg-type]
        loss_fn = loss_fn.to(world.device)
        label = name or f"clothing1m/{config.model}/{config.method} {TRAINING_SETS[config.train_set]}"
        history = fit_loader(config, model, loss_fn, train_set, val_set, world,  # type: ignore[arg-type]
                             name=label, augmented=bool(config.augment))
        kw = {"batch_size": config.eval_batch_size, "workers": config.workers, "amp": config.amp}
        test_loss, test_accuracy = evaluate_loader(model, test_set, world, **kw)
        if save_probs is not None:
            probs = probabilities_loader(model, _with_transform(split, eval_t), world, **kw)
            if world.is_main:
                write_npy(save_probs, probs.numpy().astype(np.float32))
        if checkpoint is not None and world.is_main:
            save_checkpoint(model, checkpoint)
        init = {"imagenet": "ImageNet", "scratch": "scratch"}.get(config.init, config.init_checkpoint)
        record = {
            "dataset": "clothing1m",
            "model": config.model,
            "method": config.method,
            "noise": "real",
            "N": None,
            "seed": config.seed,
            "test_accuracy": test_accuracy,
            "test_loss": test_loss if math.isfinite(test_loss) else None,
            "best_epoch": history["best_epoch"],
            "epochs": config.epochs,
            "val_loss": _finite_or_none(history["val_loss"]),
            "val_accuracy": _finite_or_none(history["val_accuracy"]),
            "train_loss": _finite_or_none(history["train_loss"]),
            "lr": history["lr"],
            "selection": history["selection"],
            "T": None if T is None else T.tolist(),
            "T_hat": None if T_hat is None else T_hat.tolist(),
            "estimation_error": error,
            "identity_mix": mix,
            "realised_noise_rate": realised,
            "sizes": {"train": len(train_set), "val": len(val_set), "test": len(test_set)},
            "wall_time_s": time.perf_counter() - started,
            "device": str(world.device),
            "threads": torch.get_num_threads(),
            "versions": _versions(world.device),
            "config": config.to_dict(),
            "table3_row": config.row,
            "training_set": TRAINING_SETS[config.train_set],
            "init": init,
            "T_source": _T_source(config, method.transition),
            "world_size": world.size,
            "global_batch_size": config.batch_size,
            "steps": history["steps"],
        }
        return record
    finally:
        if own_world:
            distributed.shutdown(world)
