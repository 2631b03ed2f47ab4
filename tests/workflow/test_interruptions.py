"""The workflow interrupted: killed (SIGKILL to Snakemake and every job) at random points and resumed with
the same command, and a full disk. The result is the table of an uninterrupted run, and no file under a
final name is ever partial.

`PYROBUST_KILLS` (default 3) and `PYROBUST_KILL_SEED` (default 0) set the number of kills and the random
points; `pytest -s` prints when each kill came and what it interrupted.
"""

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import SNAKEMAKE, TINY, run_snakemake, snakemake_env

# Where the workflow writes what its jobs read (logs and Snakemake's own state are not results).
OUTPUTS = ("results", "reports")
PNG_END = b"IEND\xaeB`\x82"


def check_whole(path):
    """Read a file under its final name as its format says; raise if it is partial."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".npy":
        np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            [arrays[name] for name in arrays.files]
    elif path.suffix == ".png":
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and data.endswith(PNG_END), f"{path}: a partial PNG"
    elif path.suffix == ".csv":
        pd.read_csv(path)
    elif path.suffix == ".md":
        assert path.read_text().endswith("\n"), f"{path}: a partial Markdown file"


def final_files(work):
    """Files under a final name in the output folders (hidden ones: temporary files, Snakemake's markers)."""
    return [
        p for folder in OUTPUTS if (work / folder).exists() for p in sorted((work / folder).rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]  # fmt: skip


def temporary_files(work):
    return [p for folder in OUTPUTS if (work / folder).exists() for p in (work / folder).rglob(".*.tmp")]


def start(args, work, env, log):
    """Snakemake in a session of its own: a SIGKILL to that process group reaches it and every job."""
    return subprocess.Popen(
        [*SNAKEMAKE, *args], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_point(rng, process, log_path, work, first):
    """Wait for a point of the run and return how long after its start it came (early if the run ends).

    The first kill comes as soon as a training job has written its first record, while it trains its next
    method (a job half done, its first output whole: the resume must redo it, not take it as done); then
    at random points, mostly while jobs run, sometimes while Snakemake starts."""
    begin = time.monotonic()
    if first:
        while process.poll() is None and not list((work / "results").rglob("cross_entropy.json")):
            time.sleep(0.02)
        return time.monotonic() - begin
    if rng.random() < 0.2:
        deadline = begin + rng.uniform(0.5, 3.0)  # Snakemake starting, building the DAG, its first job
    else:
        deadline = None
        while process.poll() is None and deadline is None:  # the first job of this run started
            if re.search(r"^(?:local)?(?:rule|checkpoint) \w+:", log_path.read_text(), flags=re.MULTILINE):
                deadline = time.monotonic() + rng.uniform(0.2, 6.0)
            time.sleep(0.05)
    while deadline is not None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.monotonic() - begin


@pytest.mark.slow
def test_killed_at_random_points_and_resumed_it_gives_the_table_of_an_uninterrupted_run(
    workdir, tmp_path, tiny_table
):
    kills = int(os.environ.get("PYROBUST_KILLS", "3"))
    rng = random.Random(int(os.environ.get("PYROBUST_KILL_SEED", "0")))
    env = snakemake_env(tmp_path)
    # the command a user runs (the default profile, profiles/default, adds --rerun-incomplete)
    command = ["--cores", "2", *TINY]
    lines, begin = [], time.monotonic()
    for kill in range(1, kills + 1):
        log_path = tmp_path / f"run{kill}.log"
        with open(log_path, "w") as log:
            process = start(command, workdir, env, log)
            delay = kill_point(rng, process, log_path, workdir, first=kill == 1)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output = log_path.read_text()
        unlocked = any((workdir / ".snakemake" / "locks").glob("*"))
        if unlocked:  # the kill left Snakemake's lock behind: `snakemake --unlock`, as the README says
            run_snakemake("--unlock", *TINY, cwd=workdir, env=env)
        started = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", output, flags=re.MULTILINE)
        finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output)
        for rule in finished:
            started.remove(rule)
        lines.append(
            f"kill {kill}: after {delay:4.1f} s (returncode {process.returncode}), {len(finished)} jobs "
            f"finished, killed while running {sorted(started)}, {len(temporary_files(workdir))} temporary "
            f"files left{', unlocked' if unlocked else ''}"
        )
        for path in final_files(workdir):  # never a partial file under a final name
            check_whole(path)
    start_resume = time.monotonic()
    run_snakemake(*command, cwd=workdir, env=env)  # the same command, once more
    lines.append(f"resumed to the end in {time.monotonic() - start_resume:.1f} s; total {time.monotonic() - begin:.1f} s")
    print("\n".join(lines))

    assert (workdir / "reports/table2.csv").read_bytes() == tiny_table, "\n".join(lines)
    for path in final_files(workdir):
        check_whole(path)
    assert "Nothing to be done" in run_snakemake("-n", *TINY, cwd=workdir, env=env)


ENOSPC_HOOK = '''
"""Test hook: the atomic writer of pyrobust meets a full disk (ENOSPC after half of the payload) when it
writes a file whose name ends with $PYROBUST_FULL_DISK."""
import os, tempfile, types

_target = os.environ.get("PYROBUST_FULL_DISK")
if _target:
    import pyrobust._io as _io
    from full_disk import HalfWritten

    _names = {}

    def _mkstemp(**kwargs):
        fd, name = tempfile.mkstemp(**kwargs)
        _names[fd] = name
        return fd, name

    def _fdopen(fd, mode):
        file = os.fdopen(fd, mode)
        return HalfWritten(file) if _names.pop(fd, "").split(".tmp")[0].rsplit(".", 1)[0].endswith(_target) else file

    _io.tempfile = types.SimpleNamespace(mkstemp=_mkstemp)
    _io.os = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    _io.os.fdopen = _fdopen
'''


@pytest.mark.slow
def test_a_full_disk_fails_the_job_with_a_clear_error_and_leaves_no_partial_file(workdir, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ENOSPC_HOOK)
    shutil.copy(Path(__file__).parents[1] / "full_disk.py", hook)  # the hook's HalfWritten
    env = snakemake_env(tmp_path, extra_path=[hook])
    run = workdir / "results/mnist5k/fc/asymmetric-0.6/seed0"
    target = str((run / "savage.json").relative_to(workdir))

    full_disk = dict(env, PYROBUST_FULL_DISK="savage.json")
    result = run_snakemake(target, "--cores", "2", *TINY, cwd=workdir, env=full_disk, check=False)
    assert result.returncode != 0
    log = (workdir / "logs/mnist5k/fc/asymmetric-0.6/seed0/without_T_hat.log").read_text()
    assert os.strerror(errno.ENOSPC) in log and f"{run.relative_to(workdir)}/savage.json" in log, log[-2000:]
    assert not (run / "savage.json").exists() and list(run.glob(".*.tmp")) == []
    # Snakemake removes what the failed job wrote before the full disk: its outputs are redone together
    assert not (run / "cross_entropy.json").exists() and not (run / "cross_entropy.probs.npy").exists()

    run_snakemake(target, "--cores", "2", *TINY, cwd=workdir, env=env)  # space again: the same command
    assert json.loads((run / "savage.json").read_text())["method"] == "savage"
