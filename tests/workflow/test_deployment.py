"""The workflow as users deploy it: imported as a module with a prefix, run from another working
directory, on SLURM (resources from the configuration), and in its conda environment (`--sdm conda`)."""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from packaging.requirements import Requirement
from workflow_helpers import ROOT, TINY, job_counts, job_resources, run_snakemake, snakemake_env

from pyrobust._version import __version__

# What the tiny configuration runs (see .test/config/config.yaml).
TINY_JOBS = {
    "corrupt_labels": 1, "train_without_T_hat": 2, "estimate_transition_matrix": 2, "train_with_T_hat": 2,
    "report": 1, "all": 1,
}  # fmt: skip
TRAINING_RULES = {"train_cross_entropy", "train_without_T_hat", "train_with_T_hat"}


def written_files(folder):
    """Every file under `folder` but Snakemake's own state and the host's Snakefile, relative to it."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*")
        if p.is_file() and ".snakemake" not in p.relative_to(folder).parts and p.name != "Snakefile"
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- a module


@pytest.mark.slow
def test_imported_as_a_module_with_a_prefix_it_writes_every_file_under_the_prefix(workdir, tmp_path, tiny_table):
    """`module table2: ... prefix: "t2"`: every path a job writes comes from its rule's output and log (was:
    --out-dir, --save-probs and --results built from strings, and a MissingOutputException)."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "Snakefile").write_text(textwrap.dedent(f"""\
        configfile: "{workdir / '.test/config/config.yaml'}"


        module table2:
            snakefile:
                "{workdir / 'Snakefile'}"
            config:
                config
            prefix:
                "t2"


        use rule * from table2 as t2_*
    """))
    env = snakemake_env(tmp_path)
    # cifar10 is not there: its probe (a checkpoint) runs too, and it is listed as missing
    run_snakemake("--cores", "2", "--config", "default_datasets=[mnist5k,cifar10]", cwd=host, env=env)

    files = written_files(host)
    assert [f for f in files if not f.startswith("t2/")] == []
    assert {"t2/reports/table2.csv", "t2/reports/table2.md", "t2/results/data/cifar10.json", "t2/logs/report.log",
            "t2/results/mnist5k/fc/asymmetric-0.6/seed1/cross_entropy.probs.npy",
            "t2/results/mnist5k/fc/asymmetric-0.6/seed1/T_hat.json"} <= set(files)  # fmt: skip
    assert (host / "t2/reports/table2.csv").read_bytes() == tiny_table  # the table of the workflow run itself
    assert "(`cifar10`)" in (host / "t2/reports/table2.md").read_text()


# ------------------------------------------------------------------------------ another working directory


def test_it_runs_from_another_working_directory_with_the_defaults_or_that_directorys_config(workdir, tmp_path):
    """`snakemake -s path/to/Snakefile --directory elsewhere` (was: config/config.yaml missing)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = snakemake_env(tmp_path)
    snakefile = str(workdir / "Snakefile")
    counts = job_counts("-s", snakefile, "--directory", str(elsewhere), cwd=tmp_path, env=env)
    assert counts == job_counts(cwd=workdir, env=env)  # the workflow's own config/config.yaml: the 65 jobs
    assert sum(counts.values()) == 66
    output = run_snakemake("-n", "-p", "-s", snakefile, "--directory", str(elsewhere), cwd=tmp_path, env=env)
    assert "Using workflow specific profile" in output  # profiles/default, found beside the Snakefile
    assert "--out-dir results/mnist5k/fc/asymmetric-0.6/seed4 " in output  # relative to the working directory

    # a config/config.yaml of the working directory is that deployment's own settings
    (elsewhere / "config").mkdir()
    (elsewhere / "config" / "config.yaml").write_text("methods: [savage]\nseeds: 1\n")
    assert job_counts("-s", snakefile, "--directory", str(elsewhere), cwd=tmp_path, env=env) == {
        "corrupt_labels": 4, "train_without_T_hat": 4, "report": 1, "all": 1,
    }  # fmt: skip


# -------------------------------------------------------------------------------------------- SLURM


def test_slurm_resources_follow_the_configuration(workdir, tmp_path):
    """A GPU (and `cuda_resources`) only for training jobs with `device: cuda`; their threads and runtime from
    the config; nothing set on local rules (was: a GPU, 4 CPUs and 24 GB for every training job, a runtime on
    the local report)."""
    env = snakemake_env(tmp_path)
    profile = ["--workflow-profile", "workflow/profiles/slurm"]
    settings = yaml.safe_load((workdir / "workflow/profiles/slurm/config.yaml").read_text())
    local = {"report", "fetch_dataset", "probe_dataset", "all"}
    assert local.isdisjoint(settings.get("set-resources", {})) and local.isdisjoint(settings.get("set-threads", {}))

    cpu = job_resources(*profile, *TINY, "--config", "threads=2", cwd=workdir, env=env)
    assert {rule: len(jobs) for rule, jobs in cpu.items()} == TINY_JOBS
    for rule in TRAINING_RULES & set(cpu):
        for job in cpu[rule]:
            assert job.get("gpu", "0") == "0" and job["slurm_partition"] == "cpu", (rule, job)
            assert "cpus_per_task" not in job and job["mem_mb"] == "4000"  # SLURM asks for the job's threads
    assert [job["runtime"] for job in cpu["train_without_T_hat"]] == ["20", "20"]  # 10 min x 2 methods

    cuda_resources = "cuda_resources={slurm_partition: gpu, mem_mb: 24000}"
    cuda = job_resources(*profile, *TINY, "--config", "device=cuda", cuda_resources, cwd=workdir, env=env)
    for rule, jobs in cuda.items():
        for job in jobs:
            if rule in TRAINING_RULES:
                assert (job["gpu"], job["slurm_partition"], job["mem_mb"]) == ("1", "gpu", "24000"), (rule, job)
            else:
                assert job.get("gpu", "0") == "0" and job.get("slurm_partition", "cpu") == "cpu", (rule, job)

    paper = job_resources(*profile, "--configfile", "config/paper.yaml", "--config", "datasets=[mnist]",
                          cwd=workdir, env=env)  # fmt: skip
    assert {job["slurm_partition"] for job in paper["train_cross_entropy"]} == {"gpu"}


# -------------------------------------------------------------------------------------- --sdm conda


def load_code_digest():
    spec = importlib.util.spec_from_file_location("code_digest", ROOT / "workflow/scripts/code_digest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conda_environment_parses_and_declares_what_pyrobust_needs():
    """workflow/envs/pyrobust.yaml: YAML that conda reads, conda packages only (was: `--no-build-isolation`
    in its pip list, which pip rejects, and a relative `--editable ../..`), every requirement of setup.py."""
    env = yaml.safe_load((ROOT / "workflow/envs/pyrobust.yaml").read_text())
    assert set(env) == {"channels", "dependencies"} and env["channels"][0] == "conda-forge"
    specs = [d for d in env["dependencies"] if isinstance(d, str)]
    for spec in specs:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*( *(=|==|>=|<=|>|<|!=)[0-9][0-9a-z.*]*)?", spec), spec
    pip = [line for d in env["dependencies"] if isinstance(d, dict) for line in d.get("pip", [])]
    for line in pip:  # a pip part, if any, holds requirements only: no options such as --no-build-isolation
        assert not line.startswith("-") and Requirement(line), line
    names = {re.split(r"[ =<>!]", spec)[0] for spec in specs}
    setup = (ROOT / "setup.py").read_text()
    required = re.findall(r'^\s+"([A-Za-z0-9_.-]+)[<>=!~;\[ ]', setup.split("install_requires=[")[1].split("]")[0],
                          flags=re.MULTILINE)  # fmt: skip
    conda_name = {"torch": "pytorch"}
    assert {conda_name.get(n.lower(), n.lower()) for n in required} <= names
    assert {"python", "pip", "setuptools", "ninja", "cxx-compiler"} <= names  # to build the kernels there
    deploy = ROOT / "workflow/envs/pyrobust.post-deploy.sh"  # Snakemake runs it after creating the env
    assert deploy.is_file() and os.access(deploy, os.X_OK)


@pytest.mark.slow
def test_the_post_deploy_script_installs_pyrobust_from_the_checkout_and_records_its_sources(tmp_path):
    """Its pip command, dry-run (PIP_DRY_RUN) in this environment: pip accepts it and would build pyrobust
    from a copy of the checkout against the installed torch, from no index."""
    prefix = tmp_path / "env"
    env = dict(os.environ, PYROBUST_CHECKOUT=str(ROOT), CONDA_PREFIX=str(prefix), PIP_DRY_RUN="1",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "workflow/envs/pyrobust.post-deploy.sh")], env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Would install pyrobust-{__version__}" in result.stdout
    code_digest = load_code_digest()
    stamp = (prefix / code_digest.STAMP).read_text().strip()
    assert stamp == code_digest.sources_digest(ROOT)
    assert code_digest.check_environment(stamp, prefix) is None
    assert "pyrobust changed since the environment was made" in code_digest.check_environment("0" * 16, prefix)
    assert "holds pyrobust built from other sources (unknown)" in code_digest.check_environment(stamp, tmp_path)
