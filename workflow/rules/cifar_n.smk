"""Real human label noise: CIFAR-N's label sets (Wei et al., ICLR 2022) as noise settings of CIFAR-10 and
CIFAR-100 (`human-aggregate`, `human-random1`..`3`, `human-worst`; `human-noisy`: pyrobust.catalog.HUMAN_NOISE).

Such a setting injects nothing: `pyrobust corrupt --noise human-worst --N 0` writes the human labels and,
as their true T, the empirical T of the (clean, human) pairs, so the report has forward (T) and forward
(T-hat) rows for them too, and no paper column. Their N is 0, a placeholder (common.smk refuses another N,
and a human setting on another data set). They read the data set's CIFAR-N label file (pinned in
pyrobust.catalog.LABEL_FILES) from the data root, beside its CIFAR files (<data root>/cifar10n/
CIFAR-10_human.pt); with `fetch: true` the labels job waits for its download here.
"""

from pyrobust.catalog import HUMAN_NOISE, LABEL_FILES

# The CIFAR-N label files of each data set that has human noise (pyrobust.data.cifar_n.CIFAR_N, which
# imports torch: a test checks that they agree).
CIFAR_N_FILES = {"cifar10": "cifar10n", "cifar100": "cifar100n"}
FETCHED_LABELS = f"{RESULTS}/data/{{label_files}}.fetched"
# What the labels job of a (data set, human noise setting) waits for besides the data set: the download
# of its label file with `fetch: true`; nothing otherwise (`pyrobust corrupt` then names the file to place).
HUMAN_LABELS_READY = {
    (dataset, noise): (
        FETCHED_LABELS.format(label_files=CIFAR_N_FILES[dataset])
        if config["fetch"]
        else []
    )
    for noise, (dataset, *_) in HUMAN_NOISE.items()
}


# Downloads run where Snakemake runs: cluster nodes often have no internet access.
localrules:
    fetch_label_files,


rule fetch_label_files:
    """Download CIFAR-N's human label file of CIFAR-10 or CIFAR-100 into the data root (`fetch: true`),
    checked against its pinned SHA-256; the marker records success."""
    output:
        touch(FETCHED_LABELS),
    log:
        f"{LOGS}/data/{{label_files}}.fetch.log",
    wildcard_constraints:
        label_files="|".join(LABEL_FILES),
    conda:
        "../envs/pyrobust.yaml"
    params:
        data_root=config["data_root"],
        base_url=lambda wildcards: (
            f"--base-url {config['base_url']}" if config["base_url"] else ""
        ),
    shell:
        "PYROBUST_DATA={params.data_root:q} "
        "pyrobust fetch {wildcards.label_files} {params.base_url} > {log} 2>&1"
