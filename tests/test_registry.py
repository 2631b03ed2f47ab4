"""The registries (pyrobust.registry): registering, looking up, errors, and entry points of a plug-in."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import pyrobust
from pyrobust import registry
from pyrobust.entries import DatasetInfo, Method, resolve

PLUGIN = Path(__file__).parent / "plugin"


@pytest.fixture
def scratch_method():
    yield "scratch_loss"
    registry.METHODS.unregister("scratch_loss")


def test_register_method_then_build_its_loss(scratch_method):
    entry = pyrobust.register_method(scratch_method, "torch.nn:CrossEntropyLoss", label="scratch")
    assert pyrobust.get_method(scratch_method) is entry
    assert scratch_method in pyrobust.list_methods()
    assert pyrobust.list_methods()[-1] == scratch_method  # after the built-in rows
    loss = entry.make_loss(reduction="sum")
    logits, target = torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    torch.testing.assert_close(loss(logits, target), nn.functional.cross_entropy(logits, target, reduction="sum"))


def test_a_taken_name_is_refused_unless_replaced(scratch_method):
    pyrobust.register_method(scratch_method, "torch.nn:CrossEntropyLoss")
    with pytest.raises(ValueError, match="already registered"):
        pyrobust.register_method(scratch_method, "torch.nn:NLLLoss")
    pyrobust.register_method(scratch_method, "torch.nn:NLLLoss", replace=True)
    assert pyrobust.get_method(scratch_method).loss == "torch.nn:NLLLoss"


@pytest.mark.parametrize("get", [pyrobust.get_method, pyrobust.get_estimator, pyrobust.get_dataset])
def test_unknown_names_list_the_known_ones(get):
    with pytest.raises(ValueError, match="unknown .*'nope'; known: .*"):
        get("nope")


@pytest.mark.parametrize("name", ["Forward", "my-loss", "", "1st"])
def test_names_must_be_usable_in_paths_and_configs(name):
    with pytest.raises(ValueError, match="lower-case Python identifier"):
        Method(name, "torch.nn:CrossEntropyLoss")


def test_entry_fields_are_checked():
    with pytest.raises(ValueError, match="transition"):
        Method("x", "torch.nn:CrossEntropyLoss", transition="guessed")
    with pytest.raises(ValueError, match="counterpart"):
        Method("x", "torch.nn:CrossEntropyLoss", transition="true", counterpart="forward")
    with pytest.raises(ValueError, match="num_classes"):
        DatasetInfo("x", "m:f", num_classes=1)


def test_a_method_with_T_needs_it():
    with pytest.raises(ValueError, match="forward_est.*T_hat"):
        pyrobust.get_method("forward_est").make_loss()


@pytest.mark.parametrize("ref", ["no_colon", ":f", "m:"])
def test_malformed_references_are_refused(ref):
    with pytest.raises(ValueError, match="package.module:attribute"):
        resolve(ref)


def test_references_resolve_dotted_attributes():
    assert resolve("torch.nn:functional.cross_entropy") is nn.functional.cross_entropy


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The example plug-in installed (with its entry points) into a scratch folder put on sys.path."""
    site = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(PLUGIN, source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True,
    )
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for kind in (registry.METHODS, registry.ESTIMATORS, registry.DATASETS):
        for name in ("mae", "column_mean", "tinydigits"):
            kind.unregister(name)


def test_entry_points_add_a_method_an_estimator_and_a_data_set(plugin_site):
    assert {"mae"} <= set(pyrobust.list_methods())
    mae = pyrobust.get_method("mae")
    assert mae.label == "MAE" and mae.transition is None
    logits, target = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    expected = (torch.softmax(logits, 1) - nn.functional.one_hot(target, 4)).abs().sum(1).mean()
    torch.testing.assert_close(mae.make_loss()(logits, target), expected)

    probs = torch.softmax(torch.randn(50, 3, dtype=torch.float64), 1)
    labels = torch.arange(50) % 3
    T_hat = pyrobust.estimate_transition_matrix(probs, method="column_mean", labels=labels)
    rows = torch.stack([probs[labels == i].mean(0) for i in range(3)])
    torch.testing.assert_close(T_hat, rows / rows.sum(1, keepdim=True))

    tiny = pyrobust.data.load("tinydigits")  # registered by importing its module
    assert tiny.name == "tinydigits" and len(tiny.y_train) == 800 and tiny.num_classes == 10


def test_a_broken_entry_point_is_named_and_spares_the_others(plugin_site, tmp_path, monkeypatch):
    broken = tmp_path / "broken-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[pyrobust.methods]\nbroken_loss = no_such_module:LOSS\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "broken_loss" in pyrobust.list_methods()  # listed by name without importing it
    with pytest.warns(RuntimeWarning, match="broken_loss"):
        with pytest.raises(ValueError, match="could not be loaded.*no_such_module"):
            pyrobust.get_method("broken_loss")
    assert pyrobust.get_method("forward").name == "forward"
    registry.METHODS._failed.pop("broken_loss", None)
