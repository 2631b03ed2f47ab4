"""pyrobust.experiment.report: records -> table2.csv, table2.md and the figures; a plugged-in method's row."""

import json

import numpy as np
import pandas as pd
import pytest

import pyrobust
from pyrobust import registry
from pyrobust.experiment.records import load_records
from pyrobust.experiment.report import write_reports
from pyrobust.experiment.table import CSV_COLUMNS, summarize

PAPER_CSV = "workflow/resources/table2-paper.csv"


def write_record(root, dataset, model, method, noise, N, seed, accuracy, *, T=None, T_hat=None):
    path = root / dataset / model / f"{noise}-{N:g}" / f"seed{seed}" / f"{method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "dataset": dataset, "model": model, "method": method, "noise": noise, "N": N, "seed": seed,
        "test_accuracy": accuracy, "best_epoch": 3, "epochs": 4, "val_loss": [1.0] * 4,
        "val_accuracy": [50.0] * 4, "T": T or np.eye(2).tolist(), "T_hat": T_hat,
        "estimation_error": None, "realised_noise_rate": N, "wall_time_s": 1.5, "device": "cpu",
        "threads": 1, "versions": {}, "config": {},
    }  # fmt: skip
    path.write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    T = [[1.0, 0.0], [0.4, 0.6]]
    T_hat = [[0.95, 0.05], [0.35, 0.65]]
    for seed, (ce, fw) in enumerate([(52.0, 97.0), (54.0, 97.4), (53.0, 97.2)]):
        write_record(root, "mnist5k", "fc", "cross_entropy", "asymmetric", 0.6, seed, ce)
        write_record(root, "mnist5k", "fc", "forward", "asymmetric", 0.6, seed, fw)
        write_record(root, "mnist5k", "fc", "forward_est", "asymmetric", 0.6, seed, 60.0 + seed, T=T, T_hat=T_hat)
        write_record(root, "mnist5k", "fc", "cross_entropy", "none", 0.0, seed, 97.0 + seed / 10)
    (root / "mnist5k" / "fc" / "asymmetric-0.6" / "seed0" / "T_hat.json").write_text('{"T_hat": []}')
    return root


def test_summary_rows_columns_and_paper_reference(results):
    table = summarize(load_records(results), pd.read_csv(PAPER_CSV).assign(N=lambda p: p["N"].round(6)))
    assert list(table.columns) == CSV_COLUMNS
    assert len(table) == 4  # T_hat.json is not a result record
    row = table[(table.method == "forward") & (table.noise == "asymmetric")].iloc[0]
    assert row["mean"] == pytest.approx(97.2)
    assert row["std"] == pytest.approx(np.std([97.0, 97.4, 97.2], ddof=1))
    assert row["runs"] == 3
    # mnist5k is compared with the paper's full-MNIST fully connected row
    assert row["paper_reference"] == "mnist/fc"
    assert row["paper_mean"] == pytest.approx(97.3)
    assert row["mark"] == "bold star"
    assert list(table.noise) == ["none", "asymmetric", "asymmetric", "asymmetric"]


def test_write_reports_lists_missing_datasets_and_draws_figures(results, tmp_path):
    out = tmp_path / "reports"
    written = write_reports(results, out, paper_csv=PAPER_CSV, missing=["imdb", "cifar10"])
    table = pd.read_csv(out / "table2.csv")
    assert list(table.columns) == CSV_COLUMNS and set(table.dataset) == {"mnist5k"}
    markdown = (out / "table2.md").read_text()
    body, missing = markdown.split("## Missing data sets")
    assert "(`imdb`)" in missing and "(`cifar10`)" in missing and "imdb" not in body
    assert "| forward |  | **97.2 ± 0.2**\\* (97.3) |" in markdown
    assert "paper's MNIST, fully connected" in markdown
    assert "| MNIST-5k | fully connected | 4 | 0, 1, 2 | 12 | 18 | cpu | 1 |" in markdown
    figures = {p.name for p in (out / "figures").iterdir()}
    assert figures == {
        "accuracy_vs_N.png", "paper_vs_ours.png", "T_vs_T_hat_mnist5k_fc.png", "T_hat_by_estimator_mnist5k_fc.png",
    }  # fmt: skip
    assert set(written) == {
        "csv", "markdown", "estimators", "accuracy_vs_N", "paper_vs_ours", "T_vs_T_hat_mnist5k_fc",
        "T_hat_by_estimator_mnist5k_fc",
    }  # fmt: skip
    assert written["estimators"] == out / "estimators.csv"
    assert not [p for p in out.rglob("*.tmp")]  # every file went through the atomic writer


@pytest.fixture
def my_loss():
    pyrobust.register_method("my_loss", "torch.nn:CrossEntropyLoss", label="my loss")
    yield "my_loss"
    registry.METHODS.unregister("my_loss")


def test_a_method_registered_at_run_time_is_a_row_after_the_built_in_ones(my_loss, tmp_path):
    root = tmp_path / "results"
    for seed in range(2):
        for method, accuracy in (("my_loss", 70.0), ("sce", 60.0), ("cross_entropy", 50.0), ("forward", 65.0)):
            write_record(root, "mnist5k", "fc", method, "symmetric", 0.2, seed, accuracy + seed)
    written = write_reports(root, tmp_path / "reports")
    assert list(pd.read_csv(written["csv"]).method) == ["cross_entropy", "forward", "sce", "my_loss"]
    rows = [line for line in written["markdown"].read_text().splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:5]] == ["| cross-entropy", "| forward", "| SCE", "| my loss"]
    assert rows[4] == "| my loss | **70.5 ± 0.7** |"
    assert "accuracy_vs_N" not in written  # symmetric noise only: no curve against N


def test_the_workflow_names_its_runs_and_outputs_and_a_stale_record_writes_nothing(results, tmp_path):
    """`expected` (the runs the workflow asked for) and the rule's own output paths: a record of another
    run under the results folder is not read, a stale one stops the report before any file is written."""
    files = sorted((results / "mnist5k" / "fc" / "asymmetric-0.6").rglob("forward.json"))
    asked = {f: {"method": "forward", "epochs": 4, "seed": int(f.parent.name[4:])} for f in files}
    out = tmp_path / "t2" / "reports"
    written = write_reports(
        files, tmp_path / "elsewhere", expected=asked,
        csv=out / "table2.csv", markdown=out / "table2.md", figures=out / "figures",
    )  # fmt: skip
    assert written["csv"] == out / "table2.csv" and written["markdown"] == out / "table2.md"
    assert list(pd.read_csv(out / "table2.csv").method) == ["forward"]  # not the other records of results/
    assert {p.parent for p in written.values()} <= {out, out / "figures"} and not (tmp_path / "elsewhere").exists()

    stale = {**asked, files[1]: {"method": "forward", "epochs": 40}}
    fresh = tmp_path / "fresh"
    with pytest.raises(ValueError, match="seed1/forward.json: trained with other settings.*epochs: recorded 4"):
        write_reports(files, fresh, expected=stale)
    assert not fresh.exists()
