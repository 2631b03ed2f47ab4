"""Your own data in the workflow: a data set declared in the config (`custom_datasets`), no code.

An `.npz` made from the embedded MNIST-5k digits (14 x 14 features, so `fc` takes 196 inputs), its training
labels corrupted by a T that is not one of the paper's and saved with `y_train_clean`: the natural-noise
column (`none`) gets its true T from the (clean, given) pairs, the `asymmetric` column injects pair flips
on top; the table has no paper numbers.
"""

import os

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import job_counts, run_snakemake, snakemake_env

import pyrobust.data
from pyrobust import catalog
from pyrobust.noise import corrupt

METHODS = ["cross_entropy", "savage", "forward", "forward_est"]


def natural_T(C, seed=0):
    """A row-stochastic T with a strong diagonal, not one of the paper's."""
    rng = np.random.default_rng(seed)
    off = rng.dirichlet(np.ones(C - 1), size=C) * 0.3
    T = np.zeros((C, C))
    for i in range(C):
        T[i, i] = 0.7
        T[i, [j for j in range(C) if j != i]] = off[i]
    return T


def write_digits(path, n_train=1000, n_test=300):
    """mydigits.npz: MNIST-5k digits pooled to 14 x 14, noisy training labels and the clean ones."""
    data = pyrobust.data.load("mnist5k")
    pool = lambda x: torch.nn.functional.avg_pool2d(x.reshape(-1, 1, 28, 28), 2).reshape(len(x), -1)
    clean = data.y_train[:n_train]
    T = natural_T(10)
    noisy = torch.as_tensor(corrupt(clean, torch.as_tensor(T), 0))
    np.savez(
        path,
        x_train=pool(data.x_train[:n_train]).numpy().astype(np.float32),
        y_train=noisy.numpy().astype(np.int64),
        y_train_clean=clean.numpy().astype(np.int64),
        x_test=pool(data.x_test[:n_test]).numpy().astype(np.float32),
        y_test=data.y_test[:n_test].numpy().astype(np.int64),
    )
    return clean.numpy(), noisy.numpy()


def write_config(workdir, npz):
    config = {
        "custom_datasets": {
            "mydigits": {
                "format": "npz",
                "path": str(npz),
                "network": "fc",
                "epochs": 2,
                "seeds": [0, 1],
                "settings": [{"noise": "none", "N": 0}, {"noise": "asymmetric", "N": 0.6}],
            }
        },
        "methods": METHODS,
    }
    path = workdir / "my.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_declared_data_set_is_a_dag_with_its_own_columns(workdir, tmp_path):
    write_digits(tmp_path / "mydigits.npz")
    my = write_config(workdir, tmp_path / "mydigits.npz")
    env = snakemake_env(tmp_path)
    counts = job_counts("--configfile", str(my), "--config", "datasets=[mydigits]", cwd=workdir, env=env)
    # 2 columns (one labels job each), 2 seeds: 4 runs of 3 jobs (batched), and the report
    assert counts == {"corrupt_labels": 2, "train_without_T_hat": 4, "estimate_transition_matrix": 4,
                      "train_with_T_hat": 4, "report": 1, "all": 1}  # fmt: skip
    # the default table is untouched by the declaration (it is not in `datasets`)
    assert job_counts("--configfile", str(my), cwd=workdir, env=env)["corrupt_labels"] == 4


def test_a_broken_declaration_stops_the_workflow_naming_it(workdir, tmp_path):
    my = write_config(workdir, tmp_path / "absent.npz")
    result = run_snakemake("-n", "--configfile", str(my), "--config", "datasets=[mydigits]", cwd=workdir,
                           env=snakemake_env(tmp_path), check=False)
    assert result.returncode != 0
    assert "custom_datasets" in result.stderr + result.stdout and "absent.npz" in result.stderr + result.stdout


@pytest.mark.slow
def test_a_declared_data_set_with_natural_noise_end_to_end(workdir, tmp_path):
    clean, noisy = write_digits(tmp_path / "mydigits.npz")
    my = write_config(workdir, tmp_path / "mydigits.npz")
    env = snakemake_env(tmp_path)
    env.pop("PYROBUST_CUSTOM_DATASETS", None)  # the workflow sets it for its jobs
    run_snakemake("--cores", "2", "reports/table2.csv", "--configfile", str(my), "--config",
                  "datasets=[mydigits]", cwd=workdir, env=env)

    table = pd.read_csv(workdir / "reports/table2.csv")
    assert set(table.dataset) == {"mydigits"} and set(table.model) == {"fc"}
    assert set(zip(table.noise, table.N)) == {("none", 0.0), ("asymmetric", 0.6)}
    # true-T rows too (the clean labels give T), and forward_est again with each default estimator's T-hat
    rows = catalog.with_estimators(METHODS, list(catalog.DEFAULT_ESTIMATORS))
    for noise in ("none", "asymmetric"):
        assert sorted(table[table.noise == noise].method) == sorted(rows)
    assert list(table.runs.unique()) == [2] and list(table.epochs.unique()) == [2]
    assert table.paper_mean.isna().all() and table.paper_reference.isna().all()
    assert table["mean"].between(0, 100).all()

    # natural noise: the labels as given, the true T counted from the (clean, given) pairs
    labels = np.load(workdir / "results/mydigits/labels/none-0/seed0.npz")
    assert (labels["labels"] == noisy).all()
    counted = np.zeros((10, 10))
    np.add.at(counted, (clean, noisy), 1)
    counted /= counted.sum(1, keepdims=True)
    np.testing.assert_allclose(labels["T"], counted)
    # injected pair flips i -> i+1 on top of the given labels: T = T_natural @ pair flips
    flips = 0.4 * np.eye(10) + 0.6 * np.roll(np.eye(10), 1, axis=1)
    np.testing.assert_allclose(np.load(workdir / "results/mydigits/labels/asymmetric-0.6/seed0.npz")["T"],
                               counted @ flips, atol=1e-12)
    assert "PYROBUST_CUSTOM_DATASETS" not in os.environ
