"""The catalogue: torch-free, and every entry it declares resolves to working code."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import pyrobust
from pyrobust import catalog, registry
from pyrobust.models import build_model

BUILTIN_METHODS = ["cross_entropy", "unhinged_bn", "sigmoid_bn", "savage", "bootstrap_soft", "bootstrap_hard",
                   "backward", "backward_est", "forward", "forward_est",
                   "backward_dual_t", "forward_dual_t", "backward_vertex", "forward_vertex",
                   "backward_confident_joint", "forward_confident_joint", "t_revision", "volminnet",
                   "gce", "sce"]


def test_importing_the_catalogue_and_the_cli_parser_imports_no_torch():
    code = (
        "import sys; import pyrobust, pyrobust.catalog, pyrobust.registry; from pyrobust.cli import build_parser; "
        "build_parser().format_help(); pyrobust.list_methods(); pyrobust.get_dataset('mnist5k'); "
        "heavy = sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_methods_are_in_table_2_row_order():
    assert pyrobust.list_methods()[: len(BUILTIN_METHODS)] == BUILTIN_METHODS


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_every_method_builds_its_loss(name):
    method = pyrobust.get_method(name)
    T = torch.full((3, 3), 0.1, dtype=torch.float64).fill_diagonal_(0.8)
    scratch = method.learns_T and method.transition is None  # VolMinNet: T learned from scratch for C classes
    loss = method.make_loss(T if method.transition else None, **({"num_classes": 3} if scratch else {}))
    assert isinstance(loss, nn.Module)
    value = loss(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert value.shape == () and torch.isfinite(value)
    if method.counterpart is not None:
        assert pyrobust.get_method(method.counterpart).transition == "true"


def test_every_estimator_resolves():
    for entry in catalog.estimators():
        assert callable(registry.resolve(entry.function))


@pytest.mark.parametrize("name", ["mnist5k", "mnist", "imdb", "cifar10", "cifar100"])
def test_every_data_set_is_complete(name):
    info = pyrobust.get_dataset(name)
    assert callable(registry.resolve(info.loader))
    assert info.training["model"] == info.networks[0] and set(info.networks) <= set(catalog.NETWORKS)
    assert {kind for kind, _ in info.columns} <= set(catalog.NOISE_KINDS)
    assert info.embedded != bool(info.files)
    assert info.paper_reference in pyrobust.list_datasets()
    T = pyrobust.noise.transition_matrix_for(name, "asymmetric", 0.2)  # its noise structure exists
    assert T.shape == (info.num_classes, info.num_classes)


@pytest.mark.parametrize("network", list(catalog.NETWORKS))
def test_every_network_builds(network):
    assert isinstance(build_model(network, 10), nn.Module)


def test_estimated_T_methods():
    assert catalog.estimated_T_methods() == [
        "backward_est", "forward_est", "backward_dual_t", "forward_dual_t", "backward_vertex", "forward_vertex",
        "backward_confident_joint", "forward_confident_joint", "t_revision",
    ]


def test_with_estimators_adds_each_estimators_corrections_of_the_own_ones_asked_for():
    assert catalog.with_estimators(["cross_entropy", "forward_est"], ["vertex", "dual_t"]) == [
        "cross_entropy", "forward_est", "forward_vertex", "forward_dual_t",
    ]
    both = catalog.with_estimators(["backward_est", "forward_est"], ["confident_joint"])
    assert both == ["backward_est", "forward_est", "backward_confident_joint", "forward_confident_joint"]
    assert catalog.with_estimators(["cross_entropy", "forward"], ["vertex"]) == ["cross_entropy", "forward"]
    with pytest.raises(ValueError, match="'percentile' has no corrections"):
        catalog.with_estimators(["forward_est"], ["percentile"])
