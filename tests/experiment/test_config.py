"""pyrobust.experiment.config: the paper's settings per data set, read from the catalogue; --set parsing."""

import pytest

from pyrobust.experiment.config import TrainConfig
from pyrobust.registry import DATASETS, get_dataset, register_dataset


def test_paper_settings_per_dataset():
    mnist = TrainConfig.paper("mnist", "forward")
    assert (mnist.model, mnist.optimizer, mnist.lr, mnist.adagrad_eps, mnist.epochs, mnist.batch_size) == (
        "fc", "adagrad", 0.01, 1e-6, 40, 128)
    c10 = TrainConfig.paper("cifar10", "forward")
    assert (c10.model, c10.optimizer, c10.momentum, c10.weight_decay, c10.epochs, c10.lr_milestones) == (
        "resnet14", "sgd", 0.9, 1e-4, 120, (40, 80))
    c100 = TrainConfig.paper("cifar100", "forward", lr=0.1)
    assert (c100.model, c100.epochs, c100.lr_milestones, c100.lr, c100.augment) == ("resnet44", 150, (80, 120), 0.1, True)
    assert TrainConfig.paper("imdb", "forward").epochs == 50


def test_paper_settings_are_the_catalogue_entry():
    for name in ("mnist5k", "mnist", "imdb", "cifar10", "cifar100"):
        config = TrainConfig.paper(name, "forward").to_dict()
        for key, value in get_dataset(name).training.items():
            assert config[key] == (list(value) if isinstance(value, tuple) else value), (name, key)


def test_a_registered_dataset_gets_its_own_settings():
    register_dataset("toy_ds", "pyrobust.data:load", num_classes=3, training=dict(model="lstm", epochs=7, lr=0.5))
    try:
        config = TrainConfig.paper("toy_ds", "forward", seed=2)
        assert (config.model, config.epochs, config.lr, config.seed) == ("lstm", 7, 0.5, 2)
    finally:
        DATASETS.unregister("toy_ds")
    with pytest.raises(ValueError, match="unknown dataset 'toy_ds'"):
        TrainConfig.paper("toy_ds", "forward")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; known: .*mnist5k"):
        TrainConfig.paper("svhn", "forward")
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig.paper("mnist", "forward", learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig.paper("mnist", "forward", model="vgg")
    with pytest.raises(ValueError, match="N is a probability"):
        TrainConfig.paper("mnist", "forward", N=1.5)
    with pytest.raises(ValueError, match="unknown noise 'pair'"):
        TrainConfig.paper("mnist", "forward", noise="pair")


@pytest.mark.parametrize(
    "text,expected",
    [("lr=0.1", ("lr", 0.1)), ("epochs=7", ("epochs", 7)), ("lr_milestones=40,80", ("lr_milestones", (40, 80))),
     ("lr_milestones=", ("lr_milestones", ())), ("augment=true", ("augment", True)), ("amp=0", ("amp", False)),
     ("dropout=none", ("dropout", None)), ("dropout=0.2", ("dropout", 0.2)), ("threads=2", ("threads", 2)),
     ("optimizer=sgd", ("optimizer", "sgd"))],
)
def test_parse_override_types_from_the_field(text, expected):
    assert TrainConfig.parse_override(text) == expected
    assert type(TrainConfig.parse_override(text)[1]) is type(expected[1])


@pytest.mark.parametrize("text,match", [("epochs=ten", "expected int"), ("bogus=1", "key=value"),
                                        ("lr", "key=value"), ("augment=maybe", "expected bool")])
def test_parse_override_errors(text, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.parse_override(text)


def test_the_trainer_mixes_T_up_to_the_losses_own_limit():
    """One condition-number policy: the trainer's target is the backward correction's limit."""
    from pyrobust.losses import MAX_CONDITION_NUMBER

    assert TrainConfig.paper("mnist5k", "backward").backward_max_condition == MAX_CONDITION_NUMBER
