"""Data sets declared in a configuration rather than in code: ``custom_datasets`` of the workflow's config.

A declaration names a file of your own (the layouts of :mod:`pyrobust.data.arrays`) and how to run it::

    mydigits:
      format: npz                   # npz | npy | csv | imagefolder
      path: /data/mydigits.npz
      network: fc                   # fc, resnet*, ... (a name of pyrobust.catalog.NETWORKS)
      settings:                     # its Table 2 columns
        - {noise: none, N: 0}       # the labels as given (natural noise)
        - {noise: asymmetric, N: 0.6}
      # optional: seeds, epochs, training (TrainConfig keys), T (asymmetric T, .csv/.npy),
      #           num_classes, labels_csv (imagefolder), estimator, runtime, label

Every process that looks a data set up learns of the declarations from the environment variable
``PYROBUST_CUSTOM_DATASETS`` (:data:`ENV`): either the path of a YAML file (a mapping of name ->
declaration, or a config file holding ``custom_datasets:``), or the declarations themselves as a JSON/YAML
mapping (a value starting with ``{``). The data-set registry reads it on a lookup miss, like its entry
points (:class:`pyrobust.registry.Registry`). The workflow sets it (inline JSON, paths made absolute) when it
parses a config with ``custom_datasets``; the jobs it starts (``pyrobust corrupt/train/estimate``, the
report) inherit it. By hand: ``PYROBUST_CUSTOM_DATASETS=my.yaml pyrobust corrupt --dataset mydigits ...``.

Torch-free (numpy and yaml only): Snakemake's parsing imports it. ``C`` is read from the label arrays (or
class folders) unless ``num_classes`` is given.

Noise of a declared data set: ``none`` trains on the labels as given; when the file has trusted labels
(``y_train_clean``, or ``clean_indices`` + ``clean_labels``) the true ``T`` of that column is counted from the
(clean, given) pairs, so the true-T rows (``forward``, ``backward``) are meaningful. ``asymmetric`` flips
``i -> i+1 (mod C)`` with probability ``N`` (:func:`pyrobust.noise.pair_flips`) unless the declaration gives
``T:`` (then that matrix, as given; ``N`` is only the column's name); ``symmetric`` is
:func:`pyrobust.noise.symmetric`. Injected noise is applied on top of the given labels.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENV", "FORMATS", "CustomLoader", "declarations", "declared_entries", "info_from_declaration"]

#: The environment variable naming the declarations (a YAML file, or an inline JSON/YAML mapping).
ENV = "PYROBUST_CUSTOM_DATASETS"
#: The file layouts a declaration's ``format`` names (see :mod:`pyrobust.data.arrays`).
FORMATS = ("npz", "npy", "csv", "imagefolder")
#: The keys a declaration may have.
KEYS = ("format", "path", "network", "settings", "seeds", "epochs", "training", "T", "num_classes",
        "labels_csv", "estimator", "runtime", "label")

#: Default training settings per kind of network, the paper's closest (sec. 5.1): AdaGrad as for MNIST and
#: IMDB, SGD as for CIFAR-10 (also :func:`pyrobust.data.arrays.register_arrays_dataset`'s).
ADAGRAD = dict(optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=40)
SGD = dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, epochs=120, lr_milestones=(40, 80))


@dataclass(frozen=True)
class CustomLoader:
    """The loader of a declared data set: ``CustomLoader(...)(root)`` calls
    :func:`pyrobust.data.arrays.load_arrays` (``root`` is ignored: ``path`` is absolute). Picklable."""

    path: str
    name: str
    num_classes: int
    flatten: bool
    labels_csv: str | None = None

    def __call__(self, root: Any = None) -> Any:
        from pyrobust.data.arrays import load_arrays

        return load_arrays(self.path, name=self.name, num_classes=self.num_classes, flatten=self.flatten,
                           labels_csv=self.labels_csv)


def _absolute(path: Any, base: Path) -> str:
    path = Path(os.path.expanduser(str(path)))
    return str(path if path.is_absolute() else (base / path).resolve())


def _read(value: str) -> tuple[dict[str, Any], Path]:
    import yaml

    if value.lstrip().startswith("{"):
        return yaml.safe_load(value) or {}, Path.cwd()
    path = Path(os.path.expanduser(value))
    with open(path) as file:
        loaded = yaml.safe_load(file) or {}
    if isinstance(loaded, Mapping) and "custom_datasets" in loaded:
        loaded = loaded["custom_datasets"] or {}
    return loaded, path.resolve().parent


def declarations() -> dict[str, dict[str, Any]]:
    """The declarations of :data:`ENV` (empty when it is unset), relative paths made absolute (against the
    YAML file's folder, or the current directory for an inline mapping).

    Raises:
        ValueError: the value is not a mapping of name -> declaration, or a declaration is invalid.
        OSError: the file cannot be read.
    """
    value = os.environ.get(ENV, "")
    if not value.strip():
        return {}
    return _parse(value)


def _parse(value: str) -> dict[str, dict[str, Any]]:
    loaded, base = _read(value)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{ENV}: expected a mapping of data set name -> declaration, got {type(loaded).__name__}")
    out = {}
    for name, spec in loaded.items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"{ENV}: custom data set {name!r}: expected a mapping, got {spec!r}")
        unknown = set(spec) - set(KEYS)
        if unknown:
            raise ValueError(f"{ENV}: custom data set {name!r}: unknown key(s) {sorted(unknown)}; known: "
                             f"{', '.join(KEYS)}")
        for key in ("format", "path"):
            if key not in spec:
                raise ValueError(f"{ENV}: custom data set {name!r}: {key!r} is required")
        if spec["format"] not in FORMATS:
            raise ValueError(f"{ENV}: custom data set {name!r}: format must be one of {', '.join(FORMATS)}, "
                             f"got {spec['format']!r}")
        spec = dict(spec)
        for key in ("path", "T", "labels_csv"):
            if spec.get(key) is not None:
                spec[key] = _absolute(spec[key], base)
        out[str(name)] = spec
    return out


def read_num_classes(fmt: str, path: str | os.PathLike[str]) -> int:
    """``C`` of a declared file, read without torch: the largest label (noisy or clean, either split) plus
    one; for an image folder, the class folders of ``train/`` and ``test/``.

    Raises:
        FileNotFoundError: no such file or folder.
        ValueError: no labels found.
    """
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    labels: list[Any] = []
    names = ("y_train", "y_test", "y_train_clean", "clean_labels")
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as f:
            labels = [f[n] for n in names if n in f.files]
    elif fmt == "npy":
        labels = [np.load(path / f"{n}.npy", allow_pickle=False) for n in names if (path / f"{n}.npy").exists()]
    elif fmt == "csv":
        files = [path] if path.is_file() else [path / "train.csv", path / "test.csv"]
        for file in files:
            with open(file, newline="") as handle:
                for row in csv.DictReader(handle):
                    labels.append([int(row[k]) for k in ("label", "clean_label") if (row.get(k) or "").strip()])
    else:
        classes = {p.name for split in ("train", "test") if (path / split).is_dir()
                   for p in (path / split).iterdir() if p.is_dir()}
        if classes:
            return len(classes)
    flat = [int(np.max(a)) for a in labels if np.size(a)]
    if not flat:
        raise ValueError(f"{path}: no labels found to count the classes; give num_classes")
    return max(flat) + 1


def info_from_declaration(name: str, spec: Mapping[str, Any]) -> Any:
    """The :class:`pyrobust.registry.DatasetInfo` of one declaration (see the module docstring).

    Raises:
        ValueError: an unknown network, or an invalid field.
        FileNotFoundError: the file is absent and ``num_classes`` is not given.
    """
    from pyrobust.catalog import NETWORKS
    from pyrobust.registry import DatasetInfo

    network = spec.get("network", "fc")
    if network not in NETWORKS:
        raise ValueError(f"custom data set {name!r}: unknown network {network!r}; known: {', '.join(NETWORKS)}")
    num_classes = spec.get("num_classes") or read_num_classes(spec["format"], spec["path"])
    resnet = network.startswith("resnet")
    training = {"model": network, **(SGD if resnet else ADAGRAD), **(spec.get("training") or {})}
    if spec.get("epochs") is not None:
        training["epochs"] = int(spec["epochs"])
    seeds = spec.get("seeds", 1 if resnet else 5)
    settings = spec.get("settings") or [{"noise": "none", "N": 0}]
    loader = CustomLoader(str(spec["path"]), name, int(num_classes), network == "fc", spec.get("labels_csv"))
    return DatasetInfo(
        name, loader, num_classes=int(num_classes), label=spec.get("label", name),
        noise="pair_flips", training=training, networks=(network,),
        columns=tuple((s["noise"], float(s["N"])) for s in settings),
        seeds=seeds if isinstance(seeds, int) else len(seeds),
        estimator=spec.get("estimator", "percentile"), runtime=int(spec.get("runtime", 120 if resnet else 30)),
        transition_file=spec.get("T"), custom=True,
        paper_reference="",  # no paper column: not one of the paper's data sets
    )


_CACHE: dict[str, dict[str, Any]] = {}


def declared_entries() -> dict[str, Any]:
    """Name -> factory of the :class:`DatasetInfo` of every declaration of :data:`ENV` (parsed once per
    value of the variable)."""
    value = os.environ.get(ENV, "")
    if not value.strip():
        return {}
    if value not in _CACHE:
        specs = _parse(value)
        _CACHE[value] = {name: (lambda name=name, spec=spec: info_from_declaration(name, spec))
                         for name, spec in specs.items()}
    return _CACHE[value]


def to_environment(specs: Mapping[str, Mapping[str, Any]], base: str | os.PathLike[str] = ".") -> str:
    """The value of :data:`ENV` for ``specs`` (inline JSON, relative paths made absolute against ``base``)."""
    base = Path(base).resolve()
    out = {}
    for name, spec in specs.items():
        spec = dict(spec)
        for key in ("path", "T", "labels_csv"):
            if spec.get(key) is not None:
                spec[key] = _absolute(spec[key], base)
        out[name] = spec
    return json.dumps(out, sort_keys=True)
