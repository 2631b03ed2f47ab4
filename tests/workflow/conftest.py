"""Fixtures of the workflow's tests: a copy of the workflow to run, and the tiny run's table, made once."""

import pytest
from workflow_helpers import TINY, copy_workflow, run_snakemake, snakemake_env


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow, so that runs write their results, logs and reports in a temporary place."""
    return copy_workflow(tmp_path / "work")


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    """table2.csv (bytes) of an uninterrupted run of the tiny configuration, run once for the tests that
    compare theirs with it."""
    tmp = tmp_path_factory.mktemp("tiny-reference")
    work = copy_workflow(tmp / "work")
    run_snakemake("--cores", "2", *TINY, cwd=work, env=snakemake_env(tmp))
    return (work / "reports" / "table2.csv").read_bytes()
