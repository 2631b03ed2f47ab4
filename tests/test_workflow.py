"""The Snakemake workflow: DAG sizes of the default and paper configs, lint/format, an end-to-end run, the
resume and rerun rules, and the cluster code path (cluster-generic executor running jobs locally)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pyrobust.report import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
ESTIMATED = {"backward_est", "forward_est"}
TINY = [
    "epochs=1",
    "seeds=[0,1]",
    "methods=[cross_entropy,forward_est]",
    "dataset_settings={mnist5k: {settings: [{noise: asymmetric, N: 0.6}]}}",
]


def snakemake_env(tmp_path):
    """The environment of the jobs: a frozen copy of this checkout's pyrobust, `pyrobust` on PATH.

    The copy keeps the source digest the workflow reruns on (and the code the jobs run) fixed during the test.
    """
    package = tmp_path / "package"
    shutil.copytree(ROOT / "pyrobust", package / "pyrobust", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(package) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if shutil.which("pyrobust") is None:
        shim = tmp_path / "bin" / "pyrobust"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pyrobust.cli "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"
    return env


def run_snakemake(*args, cwd=ROOT, env=None, timeout=600):
    result = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def job_counts(*args, cwd=ROOT, env=None):
    """Jobs per rule of a dry run, from Snakemake's job stats table."""
    output = run_snakemake("--dry-run", "--quiet", "rules", *args, cwd=cwd, env=env)
    table = output[output.index("Job stats:") :].split("\n\n")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M))
    return {rule: int(n) for rule, n in counts.items() if rule != "total"}


def dataset_defaults(dataset):
    """A data set's models, seeds and number of noise settings, straight from the schema's defaults."""
    properties = SCHEMA["properties"]["dataset_settings"]["properties"][dataset]["properties"]
    seeds = properties["seeds"]["default"]
    return properties["models"]["default"], seeds, len(properties["settings"]["default"])


def expected_jobs(datasets, methods, *, batched, fetch):
    """Job counts computed from the configuration alone: one run per data set x model x setting x seed."""
    counts = {}
    for dataset in datasets:
        models, seeds, settings = dataset_defaults(dataset)
        labels = settings  # one job per setting writes every seed's labels, shared by the networks
        runs = settings * seeds * len(models)
        with_T_hat = [m for m in methods if m in ESTIMATED]
        without = [m for m in methods if m not in ESTIMATED and m != "cross_entropy"]
        ce = "cross_entropy" in methods or bool(with_T_hat)
        add = {
            "fetch_dataset": int(fetch),
            "corrupt_labels": labels,
            "train_cross_entropy": 0 if batched else runs * ce,
            "train_without_T_hat": runs * (1 if batched else len(without)) if (without or (batched and ce)) else 0,
            "estimate_transition_matrix": runs * bool(with_T_hat),
            "train_with_T_hat": runs * (1 if batched else len(with_T_hat)) if with_T_hat else 0,
        }
        for rule, n in add.items():
            counts[rule] = counts.get(rule, 0) + n
    counts.update(report=1, all=1)
    return {rule: n for rule, n in counts.items() if n}


# ----------------------------------------------------------------------------------------------- the DAG


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow, so that runs write their results, logs and reports in a temporary place."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("Snakefile", "workflow", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    return work




def test_estimated_methods_agree_with_the_registry():
    from pyrobust.losses import METHODS

    common = (ROOT / "workflow/rules/common.smk").read_text()
    listed = set(re.findall(r'"(\w+)"', re.search(r"ESTIMATED_T_METHODS = \[(.*?)\]", common).group(1)))
    assert listed == ESTIMATED == {m.name for m in METHODS.values() if m.transition == "estimated"}


def test_default_dag_is_the_mnist5k_table(workdir):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert config["default_datasets"] == ["mnist5k"] and len(config["methods"]) == 10
    expected = expected_jobs(["mnist5k"], config["methods"], batched=True, fetch=False)
    assert expected["corrupt_labels"] == 4
    assert job_counts(cwd=workdir) == expected


def test_paper_dag_is_every_network_of_table_2(workdir):
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert config["datasets"] == ["mnist", "imdb", "cifar10", "cifar100"]
    expected = expected_jobs(config["datasets"], config["methods"], batched=False, fetch=True)
    # 5 runs of MNIST (fc) and IMDB (embedding, lstm), 1 of CIFAR-10 (resnet14, resnet32) and CIFAR-100
    assert expected["estimate_transition_matrix"] == 4 * (5 * 1 + 5 * 2 + 1 * 2 + 1 * 1)
    assert job_counts("--configfile", "config/paper.yaml", cwd=workdir) == expected


def test_config_overrides_reach_the_dag(workdir):
    counts = job_counts("--config", "seeds=3", "methods=[savage,forward]", "epochs=2", cwd=workdir)
    assert counts == {"corrupt_labels": 4, "train_without_T_hat": 4 * 3, "report": 1, "all": 1}


def test_invalid_config_is_rejected_by_the_schema():
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--config", "methods=[cross_entropy,forwards]"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0 and "forwards" in result.stdout + result.stderr


def test_lint_and_format_are_clean():
    assert "Congratulations, your workflow is in a good condition" in run_snakemake("--lint")
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    result = subprocess.run([snakefmt, "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------------------- running


@pytest.mark.slow
def test_tiny_config_end_to_end_then_resume_and_rerun(workdir, tmp_path):
    env = snakemake_env(tmp_path)
    config = [*TINY, "default_datasets=[mnist5k,cifar10]"]  # cifar10 is not there: listed as missing
    run_snakemake("--cores", "2", "--config", *config, cwd=workdir, env=env)

    table = pd.read_csv(workdir / "reports/table2.csv")
    assert list(table.columns) == CSV_COLUMNS
    assert sorted(table.method) == ["cross_entropy", "forward_est"]
    assert set(zip(table.dataset, table.model, table.noise, table.N)) == {("mnist5k", "fc", "asymmetric", 0.6)}
    assert list(table.runs) == [2, 2] and list(table.epochs) == [1, 1]
    assert set(table.paper_reference) == {"mnist/fc"}
    assert table["mean"].between(0, 100).all()
    markdown = (workdir / "reports/table2.md").read_text()
    assert "## Missing data sets" in markdown and "(`cifar10`)" in markdown.split("## Missing data sets")[1]
    assert json.loads((workdir / "results/data/cifar10.json").read_text())["available"] is False
    assert {p.name for p in (workdir / "reports/figures").iterdir()} >= {"accuracy_vs_N.png", "paper_vs_ours.png"}
    record = json.loads((workdir / "results/mnist5k/fc/asymmetric-0.6/seed1/forward_est.json").read_text())
    assert record["seed"] == 1 and record["T_hat"] is not None

    # resuming finds everything done; a changed setting reruns exactly the jobs that depend on it
    assert "Nothing to be done" in run_snakemake("-n", "--config", *config, cwd=workdir, env=env)
    changed = [c if not c.startswith("epochs=") else "epochs=2" for c in config]
    assert job_counts("--config", *changed, cwd=workdir, env=env) == {
        "train_without_T_hat": 2, "train_with_T_hat": 2, "estimate_transition_matrix": 2, "report": 1, "all": 1,
    }  # fmt: skip


@pytest.mark.slow
def test_cluster_generic_profile_runs_jobs_through_the_submit_command(workdir, tmp_path):
    env = snakemake_env(tmp_path)
    target = "results/mnist5k/labels/asymmetric-0.6"
    profile = "workflow/profiles/cluster-generic-local"
    output = run_snakemake(target, "--workflow-profile", profile, "--config", *TINY, cwd=workdir, env=env)
    assert sorted(p.name for p in (workdir / target).glob("*.npz")) == ["seed0.npz", "seed1.npz"]
    assert re.search(r"Submitted job \d+ with external jobid '\d+'", output), output[-2000:]
