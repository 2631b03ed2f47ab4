"""pyrobust.experiment.records: loading the run records, and errors that name the file."""

import json
import re

import pytest

from pyrobust.experiment.records import (
    RECORD_KEYS,
    load_records,
    method_label,
    method_order,
)


def write_minimal_record(root, method="forward", accuracy=97.0, **extra):
    path = root / "mnist5k" / "fc" / "none-0" / "seed0" / f"{method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"dataset": "mnist5k", "model": "fc", "method": method, "noise": "none", "N": 0.0, "seed": 0,
              "test_accuracy": accuracy, **extra}  # fmt: skip
    path.write_text(json.dumps(record))
    return path


def test_bad_records_are_errors_naming_the_file(tmp_path):
    path = write_minimal_record(tmp_path, accuracy=0.97)
    path.write_text(path.read_text().replace('"test_accuracy": 0.97', '"test_accuracy": 197'))
    with pytest.raises(ValueError, match="forward.json.*percentage"):
        load_records(tmp_path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="forward.json"):
        load_records(tmp_path)


def test_an_unregistered_method_or_a_missing_key_is_an_error_naming_the_file(tmp_path):
    write_minimal_record(tmp_path, method="not_registered")
    with pytest.raises(ValueError, match="not_registered.json: unknown method 'not_registered'"):
        load_records(tmp_path)
    path = write_minimal_record(tmp_path / "other")
    record = json.loads(path.read_text())
    del record["seed"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="forward.json: result record lacks seed"):
        load_records(path)


def test_non_records_are_skipped_and_rows_carry_the_required_keys(tmp_path):
    write_minimal_record(tmp_path, epochs=4, T_hat=[[1.0]])
    (tmp_path / "T_hat.json").write_text('{"T_hat": []}')
    runs = load_records([tmp_path])
    assert len(runs) == 1 and list(runs.columns[: len(RECORD_KEYS)]) == list(RECORD_KEYS)
    assert runs.loc[0, "epochs"] == 4 and runs.loc[0, "T_hat"] == [[1.0]] and runs.loc[0, "threads"] is None
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "absent")


def test_labels_and_row_order_come_from_the_catalogue():
    assert method_label("forward_est") == "forward T̂" and method_label("not_registered") == "not_registered"
    assert method_order()[:3] == ["cross_entropy", "unhinged_bn", "sigmoid_bn"]


def test_records_of_other_settings_than_those_asked_for_are_errors_never_rows(tmp_path):
    """The workflow passes the runs it asked for: a stale record (other epochs, network, trainer setting) or
    one it did not ask for is named, never averaged into a cell."""
    path = write_minimal_record(tmp_path, epochs=40, config={"device": "cpu", "lr": 0.01, "lr_milestones": []})
    asked = {"dataset": "mnist5k", "model": "fc", "method": "forward", "noise": "none", "N": 1e-13, "seed": 0,
             "epochs": 40, "config": {"device": "cpu", "lr": 0.01, "lr_milestones": ()}}  # fmt: skip
    runs = load_records([path], expected={str(path): asked})  # N and tuples compare by value
    assert list(runs.epochs) == [40]
    for change, message in [
        ({"epochs": 5}, "epochs: recorded 40, asked for 5"),
        ({"model": "lstm"}, "model: recorded 'fc', asked for 'lstm'"),
        ({"config": {"lr": 0.1}}, "config.lr: recorded 0.01, asked for 0.1"),
        ({"config": {"augment": True}}, "config.augment: recorded nothing, asked for True"),
    ]:
        with pytest.raises(ValueError, match=f"forward.json: trained with other settings.*{re.escape(message)}"):
            load_records(tmp_path, expected={path: {**asked, **change}})
    other = write_minimal_record(tmp_path / "old", method="savage")
    with pytest.raises(ValueError, match="savage.json: not one of the runs asked for"):
        load_records(tmp_path, expected={path: asked})
    with pytest.raises(FileNotFoundError, match="1 record.*asked for are not among the results.*savage.json"):
        load_records([path], expected={path: asked, other: {}})
    (tmp_path / "T_hat.json").write_text("{}")
    with pytest.raises(ValueError, match="T_hat.json: not a result record"):
        load_records([tmp_path / "T_hat.json"], expected={tmp_path / "T_hat.json": {}})
