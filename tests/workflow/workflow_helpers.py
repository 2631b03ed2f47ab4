"""Running the Snakemake workflow from the tests: a copy of the workflow, a frozen copy of pyrobust for its
jobs, Snakemake as a subprocess, and the job counts of a dry run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The tiny run of CI (1 epoch, 2 seeds, mnist5k, one noise setting, cross_entropy + savage + forward_est).
TINY = ["--configfile", ".test/config/config.yaml"]
# What a deployed copy of the workflow holds (the Snakefile, its default profile beside it, the rules).
WORKFLOW_FILES = ("workflow", "profiles", "config", ".test")


def copy_workflow(dest):
    """A copy of the workflow at `dest`, so that runs write their results, logs and reports there."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    return dest


def snakemake_env(tmp_path, extra_path=()):
    """The environment of the jobs: a frozen copy of this checkout's pyrobust and its kernels (a checkout's
    layout: package/pyrobust, package/kernels), `pyrobust` on PATH, `extra_path` first on PYTHONPATH.

    The copy keeps the code digest the workflow reruns on (and the code the jobs run) fixed during the test.
    """
    package = Path(tmp_path) / "package"
    if not package.exists():
        shutil.copytree(ROOT / "pyrobust", package / "pyrobust", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "kernels", package / "kernels")
    paths = [*map(str, extra_path), str(package), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    if shutil.which("pyrobust") is None:
        shim = Path(tmp_path) / "bin" / "pyrobust"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pyrobust.cli "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"
    return env


def run_snakemake(*args, cwd=ROOT, env=None, timeout=600, check=True):
    result = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout + result.stderr
    return result


def job_counts(*args, cwd=ROOT, env=None):
    """Jobs per rule of a dry run, from Snakemake's job stats table."""
    output = run_snakemake("--dry-run", "--quiet", "rules", *args, cwd=cwd, env=env)
    table = output[output.index("Job stats:") :].split("\n\n")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE))
    return {rule: int(n) for rule, n in counts.items() if rule != "total"}


def job_resources(*args, cwd=ROOT, env=None):
    """Per rule, the resources of its jobs in a dry run (``resources: a=1, b=x`` lines), as dicts."""
    output = run_snakemake("--dry-run", *args, cwd=cwd, env=env)
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", output):
        rule = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.MULTILINE)
        if rule:
            pairs = [item.split("=", 1) for item in resources.group(1).split(", ")] if resources else []
            jobs.setdefault(rule.group(1), []).append(dict(pairs))
    return jobs
