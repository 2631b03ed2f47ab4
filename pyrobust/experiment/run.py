"""Train one cell of Table 2 (a data set, a network, a method, a noise setting, a seed) and record it.

The protocol of the paper's section 5.1:

1. load the data set; corrupt the training labels with ``T`` (``noisy ~ T[clean, :]``), or take the noisy
   labels written by ``pyrobust corrupt`` (:mod:`~pyrobust.experiment.labels`);
2. hold out a fixed 10% of the *noisy* training set for validation (the split depends on the seed only);
3. train with the method's loss, built from the true ``T`` (``forward``, ``backward``), the estimate
   ``T_hat`` (``forward_est``, ``backward_est``) or no matrix (the baselines);
4. keep the weights of the epoch with the lowest validation loss *of the training loss itself* on the noisy
   validation labels (corrected losses are unbiased for, or consistent with, the clean loss);
5. report the accuracy (percent) of those weights on the clean test set.

The result is one JSON record per run (:func:`make_record`, written by :func:`write_record`). With the same
seed, the noisy labels, the split and the initial weights are the same for every method, and on CPU so is
the accuracy.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrobust._checks import check_transition_matrix
from pyrobust._io import write_json, write_npy
from pyrobust._ops import backend, cpu_capability
from pyrobust._version import __version__
from pyrobust.entries import Method
from pyrobust.experiment.config import TrainConfig
from pyrobust.experiment.labels import NoisyLabels, corrupt_labels
from pyrobust.experiment.loop import (
    Prepared,
    derived_seed,
    deterministic,
    evaluate,
    fit,
    prepare,
    probabilities,
    resolve_device,
)
from pyrobust.losses.conditioning import identity_mix_for
from pyrobust.models import build_model
from pyrobust.registry import get_method

__all__ = ["make_loss", "make_record", "train", "train_methods", "write_record"]


def make_loss(
    method: Method, T: torch.Tensor | None, config: TrainConfig, num_classes: int | None = None
) -> tuple[nn.Module, float]:
    """The method's training loss and the identity mix applied to ``T`` (0 unless it was ill-conditioned).

    ``T``: float64 (C, C), the true ``T`` or ``T_hat`` as ``method.transition`` asks, None for the
    baselines and for a method that learns T from scratch (VolMinNet: built for ``num_classes``). A method that inverts ``T`` (backward correction, section 4.1) gets ``(1 - lam) T + lam I``
    with the smallest ``lam`` keeping ``cond_2 <= config.backward_max_condition``, and its softmax clipped
    to ``[config.backward_clip, 1 - config.backward_clip]``.

    Raises:
        ValueError: ``T`` is None for a method that needs one, or the loss rejects ``T``.
    """
    if T is None:
        if method.learns_T:
            return method.make_loss(num_classes=num_classes), 0.0
        return method.make_loss(), 0.0
    if method.inverts_T:
        mix = identity_mix_for(T, config.backward_max_condition)
        return method.make_loss(T, identity_mix=mix, clip=config.backward_clip), mix
    return method.make_loss(T), 0.0


def _versions(device: torch.device) -> dict[str, str]:
    versions = {
        "pyrobust": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "loss_backend": backend(device),
    }
    if device.type == "cpu":  # the instruction set the kernels were dispatched to (default/avx2/avx512)
        versions["cpu_capability"] = str(cpu_capability())
    if device.type == "cuda":
        versions["cuda"] = str(torch.version.cuda)
        versions["gpu"] = torch.cuda.get_device_name(device)
    return versions


def _finite_or_none(values: Iterable[float]) -> list[float | None]:
    """JSON has no NaN/inf: a diverged epoch's loss is written as null."""
    return [float(v) if math.isfinite(v) else None for v in values]


def make_record(
    config: TrainConfig, *, history: dict[str, Any], test_accuracy: float, T: torch.Tensor,
    T_hat: torch.Tensor | None, estimation_error: dict[str, float] | None, identity_mix: float,
    realised_noise_rate: float, prep: Prepared, wall_time_s: float, device: torch.device,
    estimator: str | None = None,
) -> dict[str, Any]:
    """The JSON record of one run (the keys are described in :func:`train`).

    ``history`` is :func:`pyrobust.experiment.loop.fit`'s; ``T`` and ``T_hat`` are float64 (C, C) tensors,
    written as nested lists; non-finite losses become null.
    """
    return {
        "dataset": config.dataset,
        "model": config.model,
        "method": config.method,
        "noise": config.noise,
        "N": config.N,
        "seed": config.seed,
        "test_accuracy": test_accuracy,
        "best_epoch": history["best_epoch"],
        "epochs": config.epochs,
        "val_loss": _finite_or_none(history["val_loss"]),
        "val_accuracy": history["val_accuracy"],
        "train_loss": _finite_or_none(history["train_loss"]),
        "selection": history["selection"],
        "T": T.tolist(),
        "T_hat": None if T_hat is None else T_hat.tolist(),
        "estimator": estimator,
        "estimation_error": estimation_error,
        "identity_mix": identity_mix,
        "realised_noise_rate": realised_noise_rate,
        "sizes": {"train": len(prep.train_idx), "val": len(prep.val_idx), "test": len(prep.y_test)},
        "wall_time_s": wall_time_s,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": _versions(device),
        "config": config.to_dict(),
    }


def _by_estimator(T_hat: Any) -> dict[str | None, Any]:
    """``T_hat`` as estimator name -> estimate (None: the data set's own estimator), the given ones only."""
    pairs = T_hat.items() if isinstance(T_hat, Mapping) else [(None, T_hat)]
    return {name: value for name, value in pairs if value is not None}


def _resolve_methods(
    config: TrainConfig, methods: Sequence[str], noisy: NoisyLabels | None, T_hats: Mapping[str | None, Any],
    save_probs: Any,
) -> list[Method]:
    """The requested methods, checked against the other arguments before any data is loaded."""
    if not methods:
        raise ValueError("no method given")
    resolved = [get_method(m) for m in methods]
    if save_probs is not None and "cross_entropy" not in methods:
        raise ValueError(
            "--save-probs saves the cross_entropy network's probabilities: add --method cross_entropy"
        )
    for method in resolved:
        if method.transition == "estimated" and method.estimator not in T_hats:
            which = (
                "the data set's own estimator's T_hat (--T-hat FILE)"
                if method.estimator is None
                else f"the T_hat of {method.estimator} (--T-hat {method.estimator}=FILE)"
            )
            raise ValueError(f"{method.name} needs {which}, from `pyrobust estimate`")
    if noisy is not None and (
        noisy.dataset != config.dataset or noisy.noise != config.noise or not math.isclose(noisy.N, config.N)
    ):
        raise ValueError(
            f"the noisy labels are for {noisy.dataset}/{noisy.noise}/N={noisy.N} but the run is for "
            f"{config.dataset}/{config.noise}/N={config.N}"
        )
    return resolved


def train_methods(
    config: TrainConfig,
    methods: Sequence[str],
    *,
    data: Any = None,
    noisy: NoisyLabels | None = None,
    T_hat: Any = None,
    save_probs: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``config`` once per method in ``methods`` on the same data, noisy labels, split and seed.

    Args:
        config: the run's settings; its ``method`` is replaced by each of ``methods``.
        methods: registered method names, trained in this order.
        data: a loaded :class:`pyrobust.data.Dataset` (``pyrobust.data.load(config.dataset, data_root)``
            when None).
        noisy: the noisy training labels (:func:`corrupt_labels` with ``config.noise``, ``config.N``,
            ``config.seed`` when None); their data set, noise kind and N must match the config.
        T_hat: (C, C) array-like, the estimate that ``forward_est``, ``backward_est`` and ``t_revision``
            use; or a mapping from estimator names to estimates, None naming the data set's own estimator
            (``{None: T_percentile, "dual_t": T_dual_t}``) for the methods of other estimators
            (``forward_dual_t``). Each record holds the estimate its method used (or, for a method that learns
            T, the T it ended with) with its error against ``T``.
        save_probs: write the ``cross_entropy`` network's softmax on the train + validation inputs
            (float32 (n, C) ``.npy``, training set order) there, for the estimator (section 4.2).
        progress: show a progress bar per run (None: when on a terminal).
        on_result: called with each record as soon as it is ready.

    Returns:
        The records, one per method in order (see :func:`train`).

    Raises:
        ValueError: no or an unknown method, ``T_hat`` missing for an estimated-T method, ``save_probs``
            without ``cross_entropy``, noisy labels or data set of another run, ``T``/``T_hat`` not a
            row-stochastic (C, C) matrix, or a split that leaves no example on one side.
    """
    T_hats = _by_estimator(T_hat)
    resolved = _resolve_methods(config, methods, noisy, T_hats, save_probs)  # fails before loading data
    if data is None:
        from pyrobust.data import load

        data = load(config.dataset, data_root)
    if data.name != config.dataset:
        raise ValueError(f"the data set is {data.name!r} but the config says {config.dataset!r}")
    if noisy is None:
        noisy = corrupt_labels(data, config.noise, config.N, config.seed)
    if len(noisy.labels) != len(data.y_train):
        raise ValueError(
            f"{len(noisy.labels)} noisy labels for a training set of {len(data.y_train)} examples "
            f"(were they made from another version of {config.dataset}?)"
        )
    C = int(data.num_classes)
    T = check_transition_matrix(torch.as_tensor(noisy.T, dtype=torch.float64), C)
    T_hats = {
        name: check_transition_matrix(torch.as_tensor(np.asarray(value), dtype=torch.float64), C,
                                      name="T_hat" if name is None else f"T_hat of {name}")
        for name, value in T_hats.items()
    }

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    prep = prepare(config, data, noisy, device)
    from pyrobust.noise import noise_rate

    realised = float(noise_rate(torch.as_tensor(data.y_train).cpu().numpy(), noisy.labels))

    # fc takes the width of the data's (flattened) features: 784 for MNIST, d for a data set of your own
    in_features = int(np.prod(tuple(data.x_train.shape[1:]))) if config.model == "fc" else None
    records = []
    for method in resolved:
        cfg = config.replace(method=method.name)
        start = time.perf_counter()
        with deterministic(device.type == "cpu"):
            torch.manual_seed(derived_seed(cfg.seed, "init"))
            model = build_model(cfg.model, C, bn_head=method.bn_head, dropout=cfg.dropout,
                                in_features=in_features).to(device)
            if prep.channels_last:
                model = model.to(memory_format=torch.channels_last)
            used_T_hat = T_hats.get(method.estimator) if method.transition == "estimated" else None
            T_used = {None: None, "true": T, "estimated": used_T_hat}[method.transition]
            loss_fn, mix = make_loss(method, T_used, cfg, num_classes=C)
            loss_fn = loss_fn.to(device)
            history = fit(cfg, model, loss_fn, prep, progress)
            if method.learns_T:  # the T it ends with is its estimate
                used_T_hat = loss_fn.T.detach().to("cpu", torch.float64)
            elif used_T_hat is None:  # the paper's T_hat, when given, is recorded with every method
                used_T_hat = T_hats.get(None)
            _, test_accuracy = evaluate(model, None, prep.x_test, prep.y_test, prep, cfg)
            if save_probs is not None and method.name == "cross_entropy":
                write_npy(save_probs, probabilities(model, prep, cfg))
        error = None if used_T_hat is None else _estimation_error(used_T_hat, T)
        record = make_record(
            cfg, history=history, test_accuracy=test_accuracy, T=T, T_hat=used_T_hat, estimation_error=error,
            identity_mix=mix, realised_noise_rate=realised, prep=prep, wall_time_s=time.perf_counter() - start,
            device=device, estimator=method.estimator,
        )
        records.append(record)
        if on_result is not None:
            on_result(record)
    return records


def _estimation_error(T_hat: torch.Tensor, T: torch.Tensor) -> dict[str, float]:
    from pyrobust.estimate import estimation_error

    return {k: float(v) for k, v in estimation_error(T_hat, T).items()}


def train(config: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """Train one Table 2 cell and return its record (the keyword arguments are those of :func:`train_methods`).

    Record: dataset, model, method, noise, N, seed, ``test_accuracy`` (percent, clean test set, weights of
    ``best_epoch``), ``epochs``, per-epoch ``val_loss`` (the training loss on the noisy validation labels),
    ``val_accuracy`` (percent, noisy labels) and ``train_loss``, ``selection``, ``T`` (true), ``T_hat`` and
    its ``estimation_error`` (or null; a method that learns T: the T it ended with), ``estimator`` (the
    estimator of a method's own ``T_hat``: null for the data set's own), ``identity_mix`` (backward: mix of T with I applied, 0 = none),
    ``realised_noise_rate`` (fraction of training labels flipped), ``sizes`` (examples in train, val,
    test), ``wall_time_s`` (seconds), ``device``, ``threads``, ``versions``, ``config``.

    Raises:
        ValueError: as :func:`train_methods`.
    """
    return train_methods(config, [config.method], **kwargs)[0]


def write_record(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``record`` as JSON to ``path`` atomically (``pyrobust._io.write_json``).

    Raises:
        ValueError: a NaN or infinity in ``record`` (strict JSON); ``path`` is then left as it was.
        OSError: the folder cannot be written; ``path`` is then left as it was.
    """
    write_json(path, record)
