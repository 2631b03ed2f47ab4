"""Shared by the rule files. Where the workflow writes, the shape of its wildcards, the seeds and
settings of each data set, and the digests of the pyrobust code its jobs run (workflow/scripts/
code_digest.py: the Python sources, the kernels of the checkout, the built extension's bytes).

Shared helpers live here rather than in the first rule file that needs them because `snakemake --lint`
asks that a file with rules define no functions ("Mixed rules and functions in same snakefile").
"""

import functools
import importlib.util
import shlex
from pathlib import Path

import pyrobust
from pyrobust.catalog import NETWORKS, NOISE_KINDS
from pyrobust.experiment.config import TrainConfig

RESULTS = config["results_dir"]
REPORTS = config["reports_dir"]
LOGS = "logs"

# One run, i.e. one Table 2 cell of one seed: its result records (<method>.json), T-hat, and its logs.
RUN = f"{RESULTS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"
RUN_LOG = f"{LOGS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"


wildcard_constraints:
    dataset="|".join(sorted(config["dataset_settings"])),
    noise="|".join(NOISE_KINDS),
    N=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    model="|".join(NETWORKS),


def dataset_setting(dataset, key):
    """A data set's setting, with the global overrides (`seeds`, `epochs`) taking precedence."""
    if key in ("seeds", "epochs") and config[key] is not None:
        return config[key]
    return config["dataset_settings"][dataset][key]


def seeds(dataset):
    """The seeds of a data set's runs: a count n means 0..n-1."""
    value = dataset_setting(dataset, "seeds")
    return list(range(value)) if isinstance(value, int) else list(value)


def format_N(N):
    """The noise level as it appears in paths and on the command line: 0, 0.2, 0.6, ..."""
    return f"{float(N):g}"


@functools.cache
def trainer_overrides():
    """`train_overrides` typed as `pyrobust train --set key=value` reads them."""
    try:
        return dict(
            TrainConfig.parse_override(f"{key}={value}")
            for key, value in sorted(config["train_overrides"].items())
        )
    except ValueError as error:
        raise WorkflowError(
            f"Invalid configuration: train_overrides: {error}"
        ) from None


@functools.cache
def trained_epochs(dataset, model):
    """The epochs a training job of `dataset` and `model` runs: the configured ones, else
    `train_overrides`' (--set epochs=...), else the trainer's default for the data set.
    """
    epochs = dataset_setting(dataset, "epochs")
    if epochs is not None:
        return int(epochs)
    overrides = {
        k: v
        for k, v in trainer_overrides().items()
        if k not in ("model", "device", "threads")
    }
    return TrainConfig.paper(dataset, "cross_entropy", model=model, **overrides).epochs


def trained_settings(dataset, model, noise, N, seed, method):
    """What the record of one training run of this configuration says: its run, its epochs and, in its
    `config` block, the trainer settings the workflow passes (the device, `train_overrides` but those
    `pyrobust train` sets by flags of their own). The report refuses a record that says otherwise
    (`pyrobust.experiment.records.load_records(expected=...)`): a stale record is never averaged into a
    cell."""
    flags = ("epochs", "model", "device", "threads")
    overrides = {k: v for k, v in trainer_overrides().items() if k not in flags}
    return {
        "dataset": dataset,
        "model": model,
        "method": method,
        "noise": noise,
        "N": float(N),
        "seed": int(seed),
        "epochs": trained_epochs(dataset, model),
        "config": {**overrides, "device": config["device"]},
    }


def load_script_module(name):
    """A module of workflow/scripts/ (plain Python, shared with the scripts and the conda environment)."""
    spec = importlib.util.spec_from_file_location(
        name, workflow.source_path(f"../scripts/{name}.py")
    )
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


code_digest = load_script_module("code_digest")
PACKAGE = Path(pyrobust.__file__).parent

# The reporting code: a change there reruns the report, not the training. (report.py is the module it
# came from, in case it stays behind as a shim.)
REPORT_SOURCES = (
    "experiment/records.py",
    "experiment/table.py",
    "experiment/markdown.py",
    "experiment/figures.py",
    "experiment/estimators.py",
    "experiment/report.py",
    "experiment/table3.py",
    "plots.py",
    "report.py",
)
# The code the other jobs run: pyrobust's sources, the kernels of its checkout and the built extension.
TRAINING_CODE = code_digest.training_digest(
    PACKAGE, exclude=REPORT_SOURCES, extension=code_digest.extension_file()
)
# The report's: pyrobust's sources (it runs no kernel: the built extension is left out).
REPORT_CODE = code_digest.training_digest(PACKAGE)

# With `--sdm conda` every job first checks that its environment's pyrobust was built from this checkout
# as it is now (workflow/envs/pyrobust.post-deploy.sh records the sources it built): an environment left
# from before a change would otherwise train the old code under the new code's digest. Shell commands
# check in their prefix (Snakemake's default prefix, then the check), scripts on their own.
ENV_CHECK_DIGEST = code_digest.sources_digest(CHECKOUT) if CONDA else ""
if CONDA:
    shell.prefix(
        "set -euo pipefail; "
        f"python {shlex.quote(workflow.source_path('../scripts/code_digest.py'))} "
        f"--check {ENV_CHECK_DIGEST}; "
    )
