"""Clothing1M, the paper's Table 3, when the configuration has a `clothing1m:` section (null by default:
then this file defines nothing, and the Table 2 DAG is unchanged).

    snakemake --cores all reports/table3.csv --config clothing1m=config/clothing1m.yaml
    snakemake --workflow-profile workflow/profiles/slurm reports/table3.csv \
        --config 'clothing1m={runs_file: config/clothing1m.yaml, gpus: 4}'

The runs and their settings are those of the runs file (config/clothing1m.yaml; `clothing1m.set` overrides
any setting of every run). One job per run: `torchrun --nproc-per-node <gpus>` launches
`python -m pyrobust.experiment.clothing1m train <run>`, one process per GPU the job asks for
(`resources: gpu=<gpus>, runtime=<minutes>`, which the SLURM executor turns into its request), data-parallel
with DistributedDataParallel; `gpus: 0` runs one process on the CPU. A run that starts from another's
weights (#8 from #6, `init_from`) waits for that run's checkpoint; the runs trained with T-hat
(`forward_est_1m`) wait for `pyrobust clothing1m estimate`, T-hat from the softmax of the run that saves it (#4,
`save_probs`); the report joins every record with the paper's Table 3 (workflow/resources/
table3-paper.csv) into reports/table3.csv and table3.md. Every path a command writes is an output or a log
of its rule (results/clothing1m/<run>.json, .pt, .probs.npy; T_hat-<estimator>.npy and .json). A job is
rerun when its run's settings change (its params hold them) or pyrobust's code does (like Table 2's).
"""

import json
import shlex

from pyrobust.catalog import estimated_T_methods

CLOTHING1M = config["clothing1m"]
C1M_RESULTS = f"{RESULTS}/clothing1m"
C1M_LOGS = f"{LOGS}/clothing1m"
TABLE3 = [f"{REPORTS}/table3.csv", f"{REPORTS}/table3.md"] if CLOTHING1M else []

if CLOTHING1M:
    _runs_module = load_script_module("clothing1m_runs")
    try:
        C1M_RUNS = _runs_module.read_runs(
            CLOTHING1M["runs_file"],
            CLOTHING1M["runs"],
            CLOTHING1M["set"],
            estimated=estimated_T_methods(),
        )
    except ValueError as error:
        raise WorkflowError(f"Invalid configuration: clothing1m: {error}") from None
    C1M_PROBS_SOURCE = _runs_module.probs_source(C1M_RUNS)
    C1M_RECORD = f"{C1M_RESULTS}/{{run}}.json"
    C1M_CHECKPOINT = f"{C1M_RESULTS}/{{run}}.pt"
    C1M_PROBS = f"{C1M_RESULTS}/{{run}}.probs.npy"
    C1M_T_HAT = f"{C1M_RESULTS}/T_hat-{{estimator}}.npy"
    # --set key=value of every job (YAML values: JSON is YAML)
    C1M_SET = " ".join(
        f"--set {shlex.quote(f'{k}={v if isinstance(v, str) else json.dumps(v)}')}"
        for k, v in sorted(CLOTHING1M["set"].items())
    )
    C1M_GPUS = CLOTHING1M["gpus"]
    # What a training job asks a scheduler for: its GPUs (and `cuda_resources`, e.g. a partition) and time.
    C1M_RESOURCES = (
        {"gpu": C1M_GPUS, **config["cuda_resources"]} if C1M_GPUS > 0 else {}
    )
    # Per run: what its job waits for (the weights it starts from, T-hat) and the options that pass them.
    C1M_INPUTS = {
        name: {
            **(
                {"init": C1M_CHECKPOINT.format(run=run["init_from"])}
                if run["init_from"]
                else {}
            ),
            **(
                {"T_hat": C1M_T_HAT.format(estimator=run["estimator"])}
                if run["T_hat"]
                else {}
            ),
        }
        for name, run in C1M_RUNS.items()
    }
    C1M_TRAIN = dict(
        runs_file=CLOTHING1M["runs_file"],
        data_root=config["data_root"],
        processes=max(C1M_GPUS, 1),
        device="cuda" if C1M_GPUS > 0 else "cpu",
        overrides=C1M_SET,
        inputs=lambda wildcards, input: " ".join(
            f"--{'init-checkpoint' if key == 'init' else 'T-hat'} {shlex.quote(path)}"
            for key, path in input.items()
        ),
        settings=lambda wildcards: C1M_RUNS[wildcards.run]["settings"],
        code=TRAINING_CODE,
    )
    # One process per GPU: torchrun --standalone picks a free port, so that jobs on one machine coexist.
    C1M_TRAIN_COMMAND = (
        "PYROBUST_DATA={params.data_root:q} "
        "torchrun --standalone --nnodes 1 --nproc-per-node {params.processes} "
        "-m pyrobust.experiment.clothing1m train {wildcards.run} --config {params.runs_file:q} "
        "--device {params.device} --record {output.record} --checkpoint {output.checkpoint} "
        "{params.probs}{params.inputs} {params.overrides} > {log} 2>&1"
    )
    C1M_WITH_PROBS = [name for name, run in C1M_RUNS.items() if run["save_probs"]]
    C1M_WITHOUT_PROBS = [name for name in C1M_RUNS if name not in C1M_WITH_PROBS]
    C1M_ESTIMATORS = sorted(
        {run["estimator"] for run in C1M_RUNS.values() if run["T_hat"]}
    )


if CLOTHING1M and C1M_WITHOUT_PROBS:

    rule clothing1m_train:
        """One Clothing1M run (a row of Table 3): its record and its kept weights."""
        input:
            unpack(lambda wildcards: C1M_INPUTS[wildcards.run]),
        output:
            record=C1M_RECORD,
            checkpoint=C1M_CHECKPOINT,
        log:
            f"{C1M_LOGS}/{{run}}.log",
        wildcard_constraints:
            run="|".join(C1M_WITHOUT_PROBS),
        conda:
            "../envs/pyrobust.yaml"
        threads: CLOTHING1M["threads"]
        resources:
            **C1M_RESOURCES,
            runtime=CLOTHING1M["runtime"],
        params:
            **C1M_TRAIN,
            probs="",
        shell:
            C1M_TRAIN_COMMAND


if CLOTHING1M and C1M_WITH_PROBS:

    rule clothing1m_train_saving_probs:
        """A Clothing1M run that also saves its softmax on its training set (#4, the estimators' input)."""
        input:
            unpack(lambda wildcards: C1M_INPUTS[wildcards.run]),
        output:
            record=C1M_RECORD,
            checkpoint=C1M_CHECKPOINT,
            probs=C1M_PROBS,
        log:
            f"{C1M_LOGS}/{{run}}.log",
        wildcard_constraints:
            run="|".join(C1M_WITH_PROBS),
        conda:
            "../envs/pyrobust.yaml"
        threads: CLOTHING1M["threads"]
        resources:
            **C1M_RESOURCES,
            runtime=CLOTHING1M["runtime"],
        params:
            **C1M_TRAIN,
            probs=lambda wildcards, output: f"--save-probs {shlex.quote(output.probs)} ",
        shell:
            C1M_TRAIN_COMMAND


if CLOTHING1M and C1M_ESTIMATORS:

    rule clothing1m_estimate:
        """T-hat of an estimator from the softmax of the run that saves it (#4), with its error against the
        T of the clean 50k (the .json beside it)."""
        input:
            probs=C1M_PROBS.format(run=C1M_PROBS_SOURCE),
        output:
            T_hat=C1M_T_HAT,
            summary=f"{C1M_RESULTS}/T_hat-{{estimator}}.json",
        log:
            f"{C1M_LOGS}/T_hat-{{estimator}}.log",
        wildcard_constraints:
            estimator="|".join(C1M_ESTIMATORS),
        conda:
            "../envs/pyrobust.yaml"
        params:
            runs_file=CLOTHING1M["runs_file"],
            data_root=config["data_root"],
            source=C1M_PROBS_SOURCE,
            overrides=C1M_SET,
            code=TRAINING_CODE,
        shell:
            "PYROBUST_DATA={params.data_root:q} "
            "pyrobust clothing1m estimate {params.source} --config {params.runs_file:q} "
            "--probs {input.probs} --estimator {wildcards.estimator} --out {output.T_hat} "
            "{params.overrides} > {log} 2>&1"


if CLOTHING1M:

    localrules:
        clothing1m_report,

    rule clothing1m_report:
        """Table 3: the record of every run beside the paper's numbers."""
        input:
            records=[C1M_RECORD.format(run=name) for name in C1M_RUNS],
            paper=workflow.source_path("../resources/table3-paper.csv"),
        output:
            csv=report(TABLE3[0], category="Table 3"),
            md=report(TABLE3[1], category="Table 3"),
        log:
            f"{C1M_LOGS}/report.log",
        conda:
            "../envs/pyrobust.yaml"
        params:
            runs=list(C1M_RUNS),
            init_from={name: run["init_from"] for name, run in C1M_RUNS.items()},
            code=REPORT_CODE,
            env_check=ENV_CHECK_DIGEST,
        script:
            "../scripts/table3.py"
