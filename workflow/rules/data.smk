"""Data sets: download when configured, and find out which of the default data sets can be run."""


# Downloads run where Snakemake runs: cluster nodes often have no internet access.
localrules:
    fetch_dataset,
    probe_dataset,


rule fetch_dataset:
    """Download a requested data set into the data root (`fetch: true`); the marker records success."""
    output:
        touch(f"{RESULTS}/data/{{dataset}}.fetched"),
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
        f"{RESULTS}/data/{{dataset}}.json",
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
