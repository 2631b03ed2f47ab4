"""The experiment: rebuilds the paper's Table 2 (and the same table on other data) from the catalogue.

It imports the library (:mod:`pyrobust`) and the library never imports it. One job a module:

- :mod:`~pyrobust.experiment.config`: ``TrainConfig``, every setting of one run (the paper's per data set);
- :mod:`~pyrobust.experiment.labels`: the noisy-label file format (``NoisyLabels``) and ``corrupt_labels``;
- :mod:`~pyrobust.experiment.optim`: the paper's optimisers and learning-rate schedule;
- :mod:`~pyrobust.experiment.loop`: fitting one model (split, epochs, model selection, evaluation);
- :mod:`~pyrobust.experiment.run`: training the methods of one Table 2 cell and their run records;
- :mod:`~pyrobust.experiment.records`, :mod:`~.table`, :mod:`~.markdown`, :mod:`~.figures`,
  :mod:`~.report`: reading the records back into ``table2.csv``, ``table2.md`` and the figures;
- :mod:`~pyrobust.experiment.clothing1m`: Table 3 (Clothing1M), trained by the image loop of
  :mod:`~.images` (with :mod:`~.image_loaders`, :mod:`~.image_eval`), data-parallel by :mod:`~.distributed`.

Names are loaded on first use, so importing the package imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "TrainConfig": "pyrobust.experiment.config",
    "NoisyLabels": "pyrobust.experiment.labels",
    "corrupt_labels": "pyrobust.experiment.labels",
    "train": "pyrobust.experiment.run",
    "train_methods": "pyrobust.experiment.run",
    "load_records": "pyrobust.experiment.records",
    "summarize": "pyrobust.experiment.table",
    "write_reports": "pyrobust.experiment.report",
    "train_clothing1m": "pyrobust.experiment.clothing1m",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pyrobust.experiment' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
