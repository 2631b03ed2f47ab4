"""The configuration: config/config.yaml and `--config` overrides, checked against the schema completed from
pyrobust's catalogue, with every default filled in. Nothing else: each rule file derives its own values.

The settings file read first is config/config.yaml of the working directory (a deployed copy's own
settings) if there is one, else this workflow's own config/config.yaml (so that `snakemake -s
path/to/Snakefile --directory elsewhere` runs the default table), else none at all (the schema
has a default for every key). `--configfile` and `--config` change keys on top of it.

The schema (workflow/schemas/config.schema.yaml) names no data set, method, estimator, network or noise
kind; they come from the catalogue (`pyrobust.registry`, torch-free), plug-ins included, together with each
data set's defaults. `snakemake.utils.validate` only reads a schema from a file, hence the few lines of
jsonschema below (they fill defaults the way its `set_default=True` does).
"""

import copy
import csv
import os
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# The pyrobust checkout this workflow belongs to (the folder above workflow/), if it is one.
CHECKOUT = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parents[1]
if not (CHECKOUT / "pyrobust" / "catalog.py").is_file():
    CHECKOUT = None

# pyrobust as installed where Snakemake runs; else (`--sdm conda`, where only the jobs' environments have
# it) the checkout's, whose catalogue imports neither torch nor the compiled extension.
try:
    import pyrobust.catalog
except ImportError as error:
    if CHECKOUT is None:
        raise WorkflowError(
            "The workflow reads its data sets, methods and estimators from pyrobust's catalogue: run it "
            f"from a pyrobust checkout or install pyrobust where Snakemake runs ({error})"
        ) from error
    sys.path.append(str(CHECKOUT))
    import pyrobust.catalog
from pyrobust.registry import list_estimators, list_methods

# `--sdm conda`: the jobs run in workflow/envs/pyrobust.yaml, into which its post-deploy script installs
# pyrobust from this checkout (told by PYROBUST_CHECKOUT, which Snakemake passes on to it).
CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
if CONDA:
    if CHECKOUT is None:
        raise WorkflowError(
            "--sdm conda builds pyrobust from the checkout that holds this workflow; this workflow is not "
            "in one: install pyrobust where Snakemake runs and leave out --sdm conda"
        )
    os.environ.update(PYROBUST_CHECKOUT=str(CHECKOUT))  # set for the script, not read

# (`configfile:` is a no-op in a module imported with `config:`; its host passes the configuration.)
if os.path.exists("config/config.yaml"):

    configfile: "config/config.yaml"

elif CHECKOUT is not None and (CHECKOUT / "config" / "config.yaml").is_file():

    configfile: workflow.source_path("../../config/config.yaml")


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


def config_schema(schema_file, paper_table):
    """The schema of `schema_file` with the catalogue's names and each registered data set's defaults.

    `paper_table` (the paper's Table 2 as CSV) gives the default `methods`: the rows of the paper's table.
    """
    with open(schema_file) as file:
        schema = yaml.safe_load(file)
    try:  # every registered data set (a broken plug-in is left out; a broken declaration is an error)
        datasets = pyrobust.catalog.datasets()
    except ValueError as error:
        raise WorkflowError(
            f"Invalid configuration: custom_datasets: {error}"
        ) from None
    with open(paper_table, newline="") as file:
        paper_methods = {row["method"] for row in csv.DictReader(file)}
    names = schema["$defs"]
    names["dataset_name"]["enum"] = [d.name for d in datasets]
    names["method_name"]["enum"] = list_methods()
    names["estimator_name"]["enum"] = list_estimators()
    names["network_name"]["enum"] = list(pyrobust.catalog.NETWORKS)
    names["noise_kind"]["enum"] = list(pyrobust.catalog.NOISE_KINDS)
    keys = schema["properties"]
    keys["default_datasets"]["default"] = [d.name for d in datasets if d.embedded]
    keys["methods"]["default"] = [m for m in list_methods() if m in paper_methods]
    keys["estimators"]["default"] = list(pyrobust.catalog.DEFAULT_ESTIMATORS)
    keys["dataset_settings"]["properties"] = {
        d.name: {
            "$ref": "#/$defs/dataset",
            "default": {},
            "properties": {
                "models": {"default": list(d.networks)},
                "settings": {"default": [{"noise": k, "N": n} for k, n in d.columns]},
                "seeds": {
                    "default": (config.get("custom_datasets") or {})
                    .get(d.name, {})
                    .get("seeds", d.seeds)
                },
                "epochs": {"default": None},
                "estimator": {"default": d.estimator},
                "runtime": {"default": d.runtime},
            },
        }
        for d in datasets
    }
    return schema


def validate_config(config, schema):
    """Fill the defaults of `schema` into `config`, then fail on the first error, naming the key."""
    properties = jsonschema.Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, subschemas, instance, schema):
        if validator.is_type(instance, "object"):
            for key, subschema in subschemas.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from properties(validator, subschemas, instance, schema)

    Validator = jsonschema.validators.extend(
        jsonschema.Draft202012Validator, {"properties": properties_with_defaults}
    )
    error = jsonschema.exceptions.best_match(Validator(schema).iter_errors(config))
    # (a module imported with `skip_validation: True` gets the defaults, never an error)
    if error is None or workflow.modifier.skip_validation:
        return
    key = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in error.absolute_path
    ).lstrip(".")
    where = f"{key}: " if key else ""
    message = f"Invalid configuration: {where}{error.message}"
    if error.validator == "enum":
        message += (
            " (the names known to pyrobust's catalogue; a plug-in adds data sets, methods and estimators: "
            "see config/README.md)"
        )
    raise WorkflowError(message)


def check_human_noise(config):
    """CIFAR-N's human label sets (`pyrobust.catalog.HUMAN_NOISE`) are noise settings of the data set they
    relabel only, with N 0: the labels are taken as they are, N is a placeholder in paths and records.
    """
    human = pyrobust.catalog.HUMAN_NOISE
    entries = [
        (f"custom_datasets.{name}", name, entry.get("settings") or [])
        for name, entry in config["custom_datasets"].items()
    ] + [
        (f"dataset_settings.{name}", name, entry["settings"])
        for name, entry in config["dataset_settings"].items()
    ]
    for key, dataset, settings in entries:
        for i, setting in enumerate(settings):
            noise = setting["noise"]
            if noise not in human or workflow.modifier.skip_validation:
                continue
            where = f"Invalid configuration: {key}.settings[{i}]: noise {noise!r}"
            if human[noise][0] != dataset:
                own = [kind for kind, (owner, *_) in human.items() if owner == dataset]
                raise WorkflowError(
                    f"{where} is a human label set (CIFAR-N) of {human[noise][0]}, not of {dataset}; "
                    f"{dataset}'s human noise settings: {', '.join(own) or 'none'}"
                )
            if setting["N"] != 0:
                raise WorkflowError(
                    f"{where} takes CIFAR-N's human labels as they are: its N must be 0 (a placeholder; "
                    f"the noise rate is that of the labels), got {setting['N']}"
                )


config.update(typed(config))
# `clothing1m=<runs file>` is short for `clothing1m={runs_file: <runs file>}` (workflow/rules/clothing1m.smk).
if isinstance(config.get("clothing1m"), str):
    config["clothing1m"] = {"runs_file": config["clothing1m"]}
# Data sets declared in the config (`custom_datasets`): the registry reads them from this environment
# variable, here and in every job (they inherit Snakemake's environment), see pyrobust/custom_datasets.py.
if config.get("custom_datasets"):
    from pyrobust.custom_datasets import ENV as CUSTOM_DATASETS_ENV
    from pyrobust.custom_datasets import to_environment

    os.environ[CUSTOM_DATASETS_ENV] = to_environment(config["custom_datasets"])
validate_config(
    config,
    config_schema(
        workflow.source_path("../schemas/config.schema.yaml"),
        workflow.source_path("../resources/table2-paper.csv"),
    ),
)
check_human_noise(config)
