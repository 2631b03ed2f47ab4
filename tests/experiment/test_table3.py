"""Table 3 (Clothing1M) from run records beside the paper's numbers: the join by row, the checks, the files."""

from pathlib import Path

import pandas as pd
import pytest

from pyrobust.experiment.table3 import CSV_COLUMNS, load_paper_table3, markdown_table3, table3, write_table3

PAPER = Path(__file__).resolve().parents[2] / "workflow" / "resources" / "table3-paper.csv"


def record(method, training_set, row=None, accuracy=70.0, **extra):
    return {"dataset": "clothing1m", "model": "resnet50", "method": method, "test_accuracy": accuracy,
            "training_set": training_set, "init": "ImageNet", "table3_row": row, "best_epoch": 3, "epochs": 10,
            "world_size": 4, "wall_time_s": 3600.0, **extra}


def test_runs_join_the_papers_rows_by_number():
    paper = load_paper_table3(PAPER)
    records = {"forward_est_1m": record("forward_est", "1M", T_source="estimated (percentile)", accuracy=70.5),
               "forward_1m": record("forward", "1M", 6, T_source="clean 50k", accuracy=69.5),
               "forward_1m_ft_50k": record("cross_entropy", "50k", 8, accuracy=80.0, init="results/x.pt")}
    table = table3(records, paper, init_from={"forward_1m_ft_50k": "forward_1m"})
    assert list(table.columns) == CSV_COLUMNS
    assert table["row"].tolist()[:8] == list(range(1, 9)) and pd.isna(table["row"].iloc[8])
    by_run = table.set_index("run")
    assert by_run.loc["forward_1m", ["accuracy", "paper_accuracy", "T"]].tolist() == [69.5, 69.84, "clean 50k"]
    assert by_run.loc["forward_1m_ft_50k", "init"] == "#6"  # the paper's notation for "from #6's weights"
    assert pd.isna(by_run.loc["forward_est_1m", "paper_accuracy"])
    assert table[table["run"].isna()]["row"].tolist() == [1, 2, 3, 4, 5, 7]  # the paper's alone
    text = markdown_table3(table)
    assert "| 6 | ResNet-50 | forward | ImageNet | 1M | clean 50k | 69.50 | 69.84 |" in text
    assert "|  | ResNet-50 | forward T̂ | ImageNet | 1M | estimated (percentile) | 70.50 |  |" in text
    assert "| 1 | AlexNet | cross-entropy | ImageNet | 50k |  | — | 72.63 |" in text
    assert "| forward_1m | 10 | 3 | 4 | 3600 |" in text


def test_a_run_claiming_another_row_is_refused():
    paper = load_paper_table3(PAPER)
    with pytest.raises(ValueError, match=r"run 'ce' claims row #6 of Table 3 \(forward on 1M\) but trained "
                                         r"cross_entropy on 1M"):
        table3({"ce": record("cross_entropy", "1M", 6)}, paper)
    with pytest.raises(ValueError, match="runs 'a' and 'b' both claim row #6"):
        table3({"a": record("forward", "1M", 6), "b": record("forward", "1M", 6)}, paper)


def test_files_are_written_and_bad_records_named(tmp_path):
    import json

    (tmp_path / "f.json").write_text(json.dumps(record("forward", "1M", 6)))
    written = write_table3({"f": tmp_path / "f.json"}, tmp_path / "t.csv", tmp_path / "t.md", paper_csv=PAPER)
    assert pd.read_csv(written["csv"])["run"].tolist()[5] == "f"
    assert written["markdown"].read_text().startswith("# Table 3")
    (tmp_path / "bad.json").write_text(json.dumps({"dataset": "mnist"}))
    with pytest.raises(ValueError, match="bad.json: not the record of a Clothing1M run"):
        table3({"bad": tmp_path / "bad.json"})
    with pytest.raises(FileNotFoundError, match="absent.json: no such record"):
        table3({"x": tmp_path / "absent.json"})
