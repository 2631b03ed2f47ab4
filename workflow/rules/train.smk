"""One Table 2 cell per (data set, network, noise setting, seed): noisy labels, the networks, T-hat.

Each rule is one `pyrobust` call. With `batch_methods: true` (the CPU default) a run is three training
jobs' worth of work in two jobs: every method that needs no T-hat (cross_entropy, the baselines, backward
and forward with the true T) in one job as soon as the noisy labels exist, and forward_est/backward_est in
one job once T-hat has been estimated from cross_entropy. Start-up (Python, torch, the data) is then paid
once per job instead of once per method. With `batch_methods: false` (long GPU jobs that a cluster runs
side by side) every method is its own job.

The helpers below are tables and lambdas: `snakemake --lint` asks that a file with rules define no
functions (shared functions are in runs.smk).
"""

import os
import shlex

from pyrobust.catalog import estimated_T_methods, with_estimators
from pyrobust.registry import get_method

# Methods trained with the T-hat estimated from the cross_entropy network (the catalogue's
# transition == "estimated"): they wait for the estimate. Every other method runs as soon as the noisy
# labels exist.
ESTIMATED_T_METHODS = estimated_T_methods()
# The estimators compared besides each data set's own: every correction with the own T-hat in `methods`
# is trained again with each one's (forward_est -> forward_vertex, forward_dual_t).
try:
    METHODS = with_estimators(config["methods"], config["estimators"])
except ValueError as error:
    raise WorkflowError(f"Invalid configuration: estimators: {error}") from None
# The compared estimators whose T-hat a configured method trains with (none without forward_est/backward_est).
ESTIMATORS = [
    name
    for name in config["estimators"]
    if name in {get_method(m).estimator for m in METHODS}
]
METHODS_WITH_T_HAT = [m for m in METHODS if m in ESTIMATED_T_METHODS]
# cross_entropy runs on its own: its predicted probabilities are what T-hat is estimated from.
METHODS_WITHOUT_T_HAT = [
    m for m in METHODS if m not in ESTIMATED_T_METHODS and m != "cross_entropy"
]
TRAIN_CROSS_ENTROPY = "cross_entropy" in METHODS or bool(METHODS_WITH_T_HAT)
BATCHED = config["batch_methods"]
# In a batch, cross_entropy joins the other methods that need no T-hat.
BATCH_WITHOUT_T_HAT = ["cross_entropy"] * TRAIN_CROSS_ENTROPY + METHODS_WITHOUT_T_HAT

# The noisy labels of one noise setting (seed<k>.npz; one job writes every seed, shared by the networks).
LABELS = f"{RESULTS}/{{dataset}}/labels/{{noise}}-{{N}}"
# The cross_entropy network's softmax on the training inputs, from which T-hat is estimated.
PROBS = f"{RUN}/cross_entropy.probs.npy"

# --- the training jobs' command line, built here only

# Every training rule runs this command. Its params are TRAIN_PARAMS plus what differs between rules:
# `methods` (the --method flags of the job) and `extra` (--save-probs, --T-hat or nothing). Every path it
# writes comes from the rule's output and log (the records, `output.records`, go to their folder; the
# softmax to `output.probs`), so that a module's `prefix:` reaches them.
TRAIN_COMMAND = (
    "PYROBUST_DATA={params.data_root:q} "
    "pyrobust train {params.options} --threads {threads} {params.methods} {params.extra} "
    "--noisy-labels {input.labels}/seed{wildcards.seed}.npz --out-dir {params.out_dir} > {log} 2>&1"
)
# --epochs only where set: null leaves the trainer's default for the data set (the paper's schedule).
EPOCHS_OPTION = {
    dataset: (
        [f"--epochs {dataset_setting(dataset, 'epochs')}"]
        if dataset_setting(dataset, "epochs") is not None
        else []
    )
    for dataset in config["dataset_settings"]
}
TRAIN_PARAMS = dict(
    data_root=config["data_root"],
    options=lambda wildcards: " ".join(
        [
            f"--dataset {wildcards.dataset}",
            f"--model {wildcards.model}",
            f"--seed {wildcards.seed}",
            f"--device {config['device']}",
        ]
        + EPOCHS_OPTION[wildcards.dataset]
        + [f"--set {k}={v}" for k, v in sorted(config["train_overrides"].items())]
    ),
    out_dir=lambda wildcards, output: shlex.quote(os.path.dirname(records(output)[0])),
    code=TRAINING_CODE,
)
# The records of a job's output (`records`: one file or several).
records = lambda output: (
    [output.records] if isinstance(output.records, str) else list(output.records)
)
# The --method flags of a job that trains `batch` (batched) or its {method} wildcard.
method_flags = lambda batch: (
    " ".join(f"--method {method}" for method in batch)
    if BATCHED
    else lambda wildcards: f"--method {wildcards.method}"
)
# The cross_entropy network's softmax, an output of the job that trains it where T-hat is estimated.
PROBS_OUTPUT = {"probs": PROBS} if METHODS_WITH_T_HAT else {}
SAVE_PROBS = (
    (lambda wildcards, output: f"--save-probs {shlex.quote(output.probs)}")
    if METHODS_WITH_T_HAT
    else ""
)

# The records a job writes (those of `batch`, or of its {method} wildcard), its log (that of the batch
# `name`, or of its method), and its time limit: the data set's runtime per method times the methods it trains.
trained = lambda batch: (
    expand(f"{RUN}/{{method}}.json", method=batch, allow_missing=True)
    if BATCHED
    else f"{RUN}/{{method}}.json"
)
training_log = lambda name: (
    f"{RUN_LOG}/{name}.log" if BATCHED else f"{RUN_LOG}/{{method}}.log"
)
training_runtime = lambda batch: lambda wildcards: (
    config["dataset_settings"][wildcards.dataset]["runtime"]
    * (len(batch) if BATCHED else 1)
)
# What a training job asks of a scheduler besides its threads and runtime: a GPU, and `cuda_resources`
# (e.g. a GPU partition), only when it trains on one.
TRAINING_RESOURCES = (
    {"gpu": 1, **config["cuda_resources"]} if config["device"] == "cuda" else {}
)

# `pyrobust estimate` runs the data set's own estimator (the paper's), then those of `estimators`, in one job.
ESTIMATOR_OPTIONS = {
    dataset: " ".join(
        f"--estimator {name}" for name in [settings["estimator"], *ESTIMATORS]
    )
    + f" --quantile {config['quantile']}"
    for dataset, settings in config["dataset_settings"].items()
}
# Each compared estimator's T-hat (and its error, the same name .json), beside the data set's own.
OTHER_T_HATS = {name: f"{RUN}/T_hat.{name}.npy" for name in ESTIMATORS}
OTHER_ERRORS = {f"{name}_error": f"{RUN}/T_hat.{name}.json" for name in ESTIMATORS}


rule corrupt_labels:
    """The noisy training labels of one noise setting, all seeds in one job (shared by all networks)."""
    input:
        lambda wildcards: DATA_READY[wildcards.dataset],
        # a human noise setting (CIFAR-N): its label file's download (cifar_n.smk)
        lambda wildcards: HUMAN_LABELS_READY.get(
            (wildcards.dataset, wildcards.noise), []
        ),
    output:
        directory(LABELS),
    log:
        f"{LOGS}/{{dataset}}/labels/{{noise}}-{{N}}.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        data_root=config["data_root"],
        code=TRAINING_CODE,
        seeds=lambda wildcards: " ".join(str(s) for s in seeds(wildcards.dataset)),
        outs=lambda wildcards, output: " ".join(
            f"{output[0]}/seed{s}.npz" for s in seeds(wildcards.dataset)
        ),
    shell:
        "PYROBUST_DATA={params.data_root:q} "
        "pyrobust corrupt --dataset {wildcards.dataset} --noise {wildcards.noise} "
        "--N {wildcards.N} --seed {params.seeds} --out {params.outs} > {log} 2>&1"


if not BATCHED and TRAIN_CROSS_ENTROPY:

    rule train_cross_entropy:
        """cross_entropy, saving its softmax on the training inputs when T-hat is needed."""
        input:
            labels=LABELS,
        output:
            **PROBS_OUTPUT,
            records=f"{RUN}/cross_entropy.json",
        log:
            f"{RUN_LOG}/cross_entropy.log",
        conda:
            "../envs/pyrobust.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
            runtime=training_runtime(["cross_entropy"]),
        params:
            **TRAIN_PARAMS,
            methods="--method cross_entropy",
            extra=SAVE_PROBS,
        shell:
            TRAIN_COMMAND


if BATCH_WITHOUT_T_HAT if BATCHED else METHODS_WITHOUT_T_HAT:

    rule train_without_T_hat:
        """The methods that need no T-hat: baselines, corrections with the true T (and, batched, cross_entropy)."""
        input:
            labels=LABELS,
        output:
            **(PROBS_OUTPUT if BATCHED else {}),
            records=(
                trained(BATCH_WITHOUT_T_HAT)
                if BATCHED
                else trained(METHODS_WITHOUT_T_HAT)
            ),
        log:
            training_log("without_T_hat"),
        wildcard_constraints:
            method="|".join(METHODS_WITHOUT_T_HAT),
        conda:
            "../envs/pyrobust.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
            runtime=training_runtime(BATCH_WITHOUT_T_HAT),
        params:
            **TRAIN_PARAMS,
            methods=method_flags(BATCH_WITHOUT_T_HAT),
            extra=SAVE_PROBS if BATCHED else "",
        shell:
            TRAIN_COMMAND


rule estimate_transition_matrix:
    """T-hat from the cross_entropy network's softmax (Eq. 12-13), with its error against the true T (the CLI
    writes it beside T-hat: output.error is output.T_hat with the suffix .json)."""
    input:
        probs=PROBS,
        labels=LABELS,
    output:
        **OTHER_T_HATS,
        **OTHER_ERRORS,
        T_hat=f"{RUN}/T_hat.npy",
        error=f"{RUN}/T_hat.json",
    log:
        f"{RUN_LOG}/T_hat.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        estimator=lambda wildcards: ESTIMATOR_OPTIONS[wildcards.dataset],
        # one --out per estimator, in the order of --estimator (the own one, then `estimators`)
        outs=lambda wildcards, output: " ".join(
            shlex.quote(getattr(output, name)) for name in ["T_hat", *ESTIMATORS]
        ),
        code=TRAINING_CODE,
    shell:
        "pyrobust estimate --probs {input.probs} --noisy-labels {input.labels}/seed{wildcards.seed}.npz "
        "{params.estimator} --out {params.outs} > {log} 2>&1"


if METHODS_WITH_T_HAT:

    rule train_with_T_hat:
        """The corrections with the estimated T-hats (forward_est, backward_est, and those of `estimators`),
        and T-Revision (which starts from the data set's own)."""
        input:
            **OTHER_T_HATS,
            labels=LABELS,
            T_hat=rules.estimate_transition_matrix.output.T_hat,
        output:
            records=trained(METHODS_WITH_T_HAT),
        log:
            training_log("with_T_hat"),
        wildcard_constraints:
            method="|".join(METHODS_WITH_T_HAT),
        conda:
            "../envs/pyrobust.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
            runtime=training_runtime(METHODS_WITH_T_HAT),
        params:
            **TRAIN_PARAMS,
            methods=method_flags(METHODS_WITH_T_HAT),
            extra=lambda wildcards, input: " ".join(
                (
                    f"--T-hat {name}={shlex.quote(getattr(input, name))}"
                    if name != "T_hat"
                    else f"--T-hat {shlex.quote(input.T_hat)}"
                )
                for name in ["T_hat", *ESTIMATORS]
            ),
        shell:
            TRAIN_COMMAND
