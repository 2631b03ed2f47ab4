"""One Table 2 cell per (data set, network, noise setting, seed): noisy labels, the networks, T-hat.

Each rule is one `pyrobust` call. With `batch_methods: true` (the CPU default) a run is three training
jobs' worth of work in two jobs: every method that needs no T-hat (cross_entropy, the baselines, backward
and forward with the true T) in one job as soon as the noisy labels exist, and forward_est/backward_est in
one job once T-hat has been estimated from cross_entropy. Start-up (Python, torch, the data) is then paid
once per job instead of once per method. With `batch_methods: false` (long GPU jobs that a cluster runs
side by side) every method is its own job.
"""


rule corrupt_labels:
    """The noisy training labels of one noise setting, all seeds in one job (shared by all networks)."""
    input:
        data_ready,
    output:
        directory(f"{RESULTS}/{{dataset}}/labels/{{noise}}-{{N}}"),
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
            labels=noisy_labels,
        output:
            [f"{RUN}/cross_entropy.json"] + [PROBS] * bool(METHODS_WITH_T_HAT),
        log:
            f"{RUN_LOG}/cross_entropy.log",
        conda:
            "../envs/pyrobust.yaml"
        threads: config["threads"]
        resources:
            gpu=train_resources,
            runtime=train_runtime,
        params:
            data_root=config["data_root"],
            options=train_options,
            save_probs=save_probs,
            out_dir=run_dir,
            code=TRAINING_CODE,
        shell:
            "PYROBUST_DATA={params.data_root:q} "
            "pyrobust train {params.options} --threads {threads} --method cross_entropy {params.save_probs} "
            "--noisy-labels {input.labels}/seed{wildcards.seed}.npz --out-dir {params.out_dir} > {log} 2>&1"


if BATCH_WITHOUT_T_HAT if BATCHED else METHODS_WITHOUT_T_HAT:

    rule train_without_T_hat:
        """The methods that need no T-hat: baselines, corrections with the true T (and, batched, cross_entropy)."""
        input:
            labels=noisy_labels,
        output:
            (
                trained(BATCH_WITHOUT_T_HAT) + [PROBS] * bool(METHODS_WITH_T_HAT)
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
            gpu=train_resources,
            runtime=training_runtime(BATCH_WITHOUT_T_HAT),
        params:
            data_root=config["data_root"],
            options=train_options,
            methods=method_options(BATCH_WITHOUT_T_HAT),
            save_probs=save_probs if BATCHED else "",
            out_dir=run_dir,
            code=TRAINING_CODE,
        shell:
            "PYROBUST_DATA={params.data_root:q} "
            "pyrobust train {params.options} --threads {threads} {params.methods} {params.save_probs} "
            "--noisy-labels {input.labels}/seed{wildcards.seed}.npz --out-dir {params.out_dir} > {log} 2>&1"


rule estimate_transition_matrix:
    """T-hat from the cross_entropy network's softmax (Eq. 12-13), with its error against the true T."""
    input:
        probs=PROBS,
        labels=noisy_labels,
    output:
        T_hat=f"{RUN}/T_hat.npy",
        error=f"{RUN}/T_hat.json",
    log:
        f"{RUN_LOG}/T_hat.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        estimator=lambda wildcards: (
            "--argmax"
            if config["dataset_settings"][wildcards.dataset]["estimator"] == "argmax"
            else f"--quantile {config['quantile']}"
        ),
        code=TRAINING_CODE,
    shell:
        "pyrobust estimate --probs {input.probs} --noisy-labels {input.labels}/seed{wildcards.seed}.npz "
        "{params.estimator} --out {output.T_hat} > {log} 2>&1"


if METHODS_WITH_T_HAT:

    rule train_with_T_hat:
        """The corrections with the estimated T-hat (forward_est, backward_est)."""
        input:
            labels=noisy_labels,
            T_hat=rules.estimate_transition_matrix.output.T_hat,
        output:
            trained(METHODS_WITH_T_HAT),
        log:
            training_log("with_T_hat"),
        wildcard_constraints:
            method="|".join(METHODS_WITH_T_HAT),
        conda:
            "../envs/pyrobust.yaml"
        threads: config["threads"]
        resources:
            gpu=train_resources,
            runtime=training_runtime(METHODS_WITH_T_HAT),
        params:
            data_root=config["data_root"],
            options=train_options,
            methods=method_options(METHODS_WITH_T_HAT),
            out_dir=run_dir,
            code=TRAINING_CODE,
        shell:
            "PYROBUST_DATA={params.data_root:q} "
            "pyrobust train {params.options} --threads {threads} {params.methods} --T-hat {input.T_hat} "
            "--noisy-labels {input.labels}/seed{wildcards.seed}.npz --out-dir {params.out_dir} > {log} 2>&1"
