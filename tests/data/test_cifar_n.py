"""CIFAR-10N / CIFAR-100N human labels: the restricted torch.load, checks, settings, T, fetch."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import Exploit, cifar_n_labels, sha256, torch_save_bytes

import pyrobust.data as data
from pyrobust.catalog import LABEL_FILES
from pyrobust.data import cifar_n, download
from pyrobust.data.cifar_n import (
    HUMAN_NOISE_SETTINGS,
    human_noise,
    human_noise_from_labels,
    human_settings,
    load_cifar_n,
    load_cifar_n_labels,
)

FILENAME = {"cifar10": "CIFAR-10_human.pt", "cifar100": "CIFAR-100_human.pt"}
REAL = Path("/work/shared/data/cifar-n")  # the published files, where this machine has them (never copied)


@pytest.fixture(scope="module")
def labels10():
    return cifar_n_labels("cifar10", seed=1)


@pytest.fixture(scope="module")
def labels100():
    return cifar_n_labels("cifar100", seed=2)


def write(path: Path, obj, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(torch_save_bytes(obj, **kwargs))
    return path


def place(root: Path, dataset: str, labels) -> Path:
    """Where fetch puts the file: <root>/cifar10n/CIFAR-10_human.pt."""
    return write(root / cifar_n.CIFAR_N[dataset][0] / FILENAME[dataset], labels)


# --- reading -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("numpy1", [True, False], ids=["numpy1-pickle", "numpy2-pickle"])
def test_cifar10n_round_trip(tmp_path, labels10, numpy1):
    path = write(tmp_path / "CIFAR-10_human.pt", labels10, numpy1=numpy1)
    out = load_cifar_n_labels(path)
    assert sorted(out) == sorted(labels10)
    for key, values in out.items():
        assert values.dtype == np.int64 and values.shape == (50_000,)
        np.testing.assert_array_equal(values, labels10[key])


def test_cifar100n_coarse_lists_become_arrays(tmp_path, labels100):
    assert isinstance(labels100["clean_coarse_label"], list)  # as in the published file
    out = load_cifar_n_labels(write(tmp_path / "c100.pt", labels100))
    assert set(out) == {"clean_label", "noisy_label", "clean_coarse_label", "noisy_coarse_label"}
    assert out["noisy_coarse_label"].dtype == np.int64 and out["noisy_coarse_label"].max() < 20
    np.testing.assert_array_equal(out["noisy_label"], labels100["noisy_label"])


def test_the_length_check_is_on_by_default_and_can_be_relaxed(tmp_path):
    small = cifar_n_labels("cifar10", n=200)
    path = write(tmp_path / "small.pt", small)
    with pytest.raises(data.DataFormatError, match=r"small.pt: clean_label has 200 labels, expected 50000"):
        load_cifar_n_labels(path)
    assert len(load_cifar_n_labels(path, num_examples=None)["aggre_label"]) == 200
    uneven = dict(small, worse_label=small["worse_label"][:-1])
    with pytest.raises(data.DataFormatError, match="worse_label has 199 labels, expected 200"):
        load_cifar_n_labels(write(tmp_path / "uneven.pt", uneven), num_examples=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(aggre_label=np.where(np.arange(200) == 7, 10, d["aggre_label"])),
         r"aggre_label holds classes outside \[0, 10\)"),
        (lambda d: d.update(random_label2=-d["random_label2"] - 1), r"outside \[0, 10\)"),
        (lambda d: d.pop("worse_label"), "are not those of CIFAR-10N"),
        (lambda d: d.update(extra=d["clean_label"]), "are not those of CIFAR-10N"),
        (lambda d: d.update(clean_label=d["clean_label"].reshape(20, 10)), "must be a 1-D array of integer"),
    ],
    ids=["out-of-range", "negative", "missing-key", "unknown-key", "2-D"],
)
def test_bad_contents_are_rejected_naming_the_file(tmp_path, change, message):
    labels = cifar_n_labels("cifar10", n=200)
    change(labels)
    with pytest.raises(data.DataFormatError, match=f"bad.pt: .*{message}"):
        load_cifar_n_labels(write(tmp_path / "bad.pt", labels), num_examples=None)


def test_cifar100n_label_range(tmp_path):
    labels = cifar_n_labels("cifar100", n=300)
    labels["noisy_coarse_label"][3] = 20
    with pytest.raises(data.DataFormatError, match=r"noisy_coarse_label holds classes outside \[0, 20\)"):
        load_cifar_n_labels(write(tmp_path / "c100.pt", labels), num_examples=None)


def test_missing_truncated_and_foreign_files(tmp_path, labels10):
    with pytest.raises(data.DatasetNotAvailable, match="nothere.pt"):
        load_cifar_n_labels(tmp_path / "nothere.pt")
    whole = torch_save_bytes(labels10)
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(data.DataFormatError, match="cut.pt: not a torch.save zip"):
        load_cifar_n_labels(tmp_path / "cut.pt")
    (tmp_path / "list.pt").write_bytes(torch_save_bytes([1, 2, 3]))
    with pytest.raises(data.DataFormatError, match="list.pt: expected a dict of label arrays"):
        load_cifar_n_labels(tmp_path / "list.pt")
    with zipfile.ZipFile(tmp_path / "empty.pt", "w") as z:
        z.writestr("archive/version", "3\n")
    with pytest.raises(data.DataFormatError, match="empty.pt: not a CIFAR-N label file"):
        load_cifar_n_labels(tmp_path / "empty.pt")


# --- untrusted pickles -------------------------------------------------------------------------------


class Custom:
    """A class of the attacker's own: unpickling it would import this module and build the object."""

    def __init__(self):
        self.payload = "anything"


def test_a_pickled_os_system_is_refused_naming_it_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = {"clean_label": np.zeros(3, np.int64), "aggre_label": Exploit(f"touch {marker}")}
    path = write(tmp_path / "evil.pt", evil)
    with pytest.raises(data.DataFormatError, match=rf"evil.pt: .*{os.system.__module__}\.system"):
        load_cifar_n_labels(path, num_examples=None)
    assert not marker.exists()


def test_a_custom_class_is_refused_naming_it(tmp_path):
    path = write(tmp_path / "custom.pt", {"clean_label": np.zeros(3, np.int64), "aggre_label": Custom()})
    with pytest.raises(data.DataFormatError, match=r"custom.pt: .*test_cifar_n\.Custom"):
        load_cifar_n_labels(path, num_examples=None)


def test_only_the_int64_dtype_is_allowed(tmp_path):
    labels = {k: v.astype(np.float64) for k, v in cifar_n_labels("cifar10", n=50).items()}
    with pytest.raises(data.DataFormatError, match="float.pt: .*Float64DType"):
        load_cifar_n_labels(write(tmp_path / "float.pt", labels), num_examples=None)


def test_the_allowed_globals_are_the_numpy_ones_and_leave_torch_state_alone(tmp_path, labels10):
    names = {name for _, name in cifar_n.NUMPY_GLOBALS}
    assert names == {"numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct",
                     "numpy.dtypes.Int64DType", "numpy.dtype", "numpy.ndarray"}
    load_cifar_n_labels(write(tmp_path / "ok.pt", labels10))
    # allowed for the call only (torch itself may register globals of its own lazily: not compared)
    after = torch.serialization.get_safe_globals()
    assert not any(entry in after or entry[0] in after for entry in cifar_n.NUMPY_GLOBALS)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(tmp_path / "ok.pt", weights_only=True)


# --- human-noise settings and T ----------------------------------------------------------------------


def test_settings():
    assert human_settings("cifar10") == ["human-aggregate", "human-random1", "human-random2", "human-random3",
                                         "human-worst"]
    assert human_settings("cifar100") == ["human-noisy"]
    assert human_settings() == list(HUMAN_NOISE_SETTINGS)
    with pytest.raises(ValueError, match="unknown human-noise setting 'human-best'; known: human-aggregate"):
        human_noise_from_labels({}, "human-best")


@pytest.mark.parametrize("setting", list(HUMAN_NOISE_SETTINGS))
def test_human_noise_T_is_the_row_normalised_count_matrix(setting, labels10, labels100):
    dataset, key = HUMAN_NOISE_SETTINGS[setting]
    labels = labels10 if dataset == "cifar10" else labels100
    noise = human_noise_from_labels(labels, setting)
    C = 10 if dataset == "cifar10" else 100
    counts = np.zeros((C, C))
    np.add.at(counts, (labels["clean_label"], labels[key]), 1)
    assert noise.T.dtype == torch.float64 and noise.T.shape == (C, C)
    np.testing.assert_allclose(noise.T.numpy(), counts / counts.sum(1, keepdims=True), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(noise.noisy_labels, labels[key])
    np.testing.assert_array_equal(noise.clean_labels, labels["clean_label"])
    assert noise.noise_rate == pytest.approx(np.mean(labels[key] != labels["clean_label"]))
    assert (noise.setting, noise.dataset, noise.key, noise.num_classes) == (setting, dataset, key, C)


def test_a_setting_of_the_other_data_set_is_refused(labels100):
    with pytest.raises(data.DataFormatError, match="no 'aggre_label' .*cifar10 file"):
        human_noise_from_labels(labels100, "human-aggregate")


def test_human_noise_from_the_data_root_and_apply(tmp_path, labels10):
    place(tmp_path, "cifar10", labels10)
    noise = human_noise("human-worst", tmp_path)
    assert noise.noise_rate == pytest.approx(0.4, abs=0.01)

    n = len(labels10["clean_label"])
    cifar = data.Dataset("cifar10", torch.zeros(n, 1), torch.from_numpy(labels10["clean_label"]),
                         torch.zeros(2, 1), torch.tensor([0, 1]), num_classes=10)
    noisy = noise.apply(cifar)
    np.testing.assert_array_equal(noisy.y_train.numpy(), labels10["worse_label"])
    np.testing.assert_array_equal(noisy.y_train_clean.numpy(), labels10["clean_label"])
    torch.testing.assert_close(noisy.transition_from_clean(), noise.T)
    assert noisy.x_train is cifar.x_train  # the images are shared, not copied

    shuffled = data.Dataset("cifar10", torch.zeros(n, 1), cifar.y_train.roll(1), cifar.x_test, cifar.y_test,
                            num_classes=10)
    with pytest.raises(data.DataFormatError, match="not CIFAR-N's clean labels"):
        noise.apply(shuffled)


def test_a_file_beside_the_data_root_is_found(tmp_path, labels100):
    write(tmp_path / "CIFAR-100_human.pt", labels100)
    assert cifar_n.cifar_n_path("cifar100", tmp_path) == tmp_path / "CIFAR-100_human.pt"
    assert human_noise("human-noisy", tmp_path).num_classes == 100


def test_absent_labels_say_what_to_put_where(tmp_path):
    with pytest.raises(data.DatasetNotAvailable) as info:
        human_noise("human-aggregate", tmp_path)
    message = str(info.value)
    remote = LABEL_FILES["cifar10n"][0]
    assert str(tmp_path / "cifar10n") in message and remote.url in message and remote.sha256 in message
    with pytest.raises(ValueError, match="CIFAR-N relabels cifar10 and cifar100, not 'mnist'"):
        load_cifar_n("mnist", tmp_path)


# --- download ----------------------------------------------------------------------------------------


def test_pins():
    assert {name: [(r.filename, r.url, r.sha256) for r in remotes] for name, remotes in LABEL_FILES.items()} == {
        "cifar10n": [("CIFAR-10_human.pt",
                      "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/CIFAR-10_human.pt",
                      "873e69c39cb9b5e97fb6bae2d60bb59b38a5cbc31d2b868f7903dcb2b9dd2310")],
        "cifar100n": [("CIFAR-100_human.pt",
                       "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/CIFAR-100_human.pt",
                       "bd2d80409754d420292d622e15e25248ba21e37d27429efac49c8da723f44394")],
    }
    assert download.remotes("cifar10n") == LABEL_FILES["cifar10n"]
    assert "cifar10n" not in data.list_datasets()  # label files, not a data set of its own
    with pytest.raises(ValueError, match=r"unknown data set 'cifar10m'.*label files: cifar10n, cifar100n"):
        download.remotes("cifar10m")


def test_fetch_then_load(file_server, tmp_path, labels10):
    content = torch_save_bytes(labels10)
    file_server.files = {"CIFAR-10_human.pt": content}
    with pytest.raises(data.ChecksumMismatch, match=LABEL_FILES["cifar10n"][0].sha256):  # pinned by default
        data.fetch("cifar10n", tmp_path, base_url=file_server.base_url, progress=False)
    paths = data.fetch("cifar10n", tmp_path, base_url=file_server.base_url, progress=False,
                       checksums={"CIFAR-10_human.pt": sha256(content)})
    assert paths == [tmp_path / "cifar10n" / "CIFAR-10_human.pt"] and paths[0].read_bytes() == content
    np.testing.assert_array_equal(human_noise("human-random2", tmp_path).noisy_labels, labels10["random_label2"])


def test_load_with_download_goes_through_fetch(file_server, tmp_path, labels100, monkeypatch):
    content = torch_save_bytes(labels100)
    file_server.files = {"CIFAR-100_human.pt": content}
    monkeypatch.setenv(download.BASE_URL_ENV, file_server.base_url)
    remote = LABEL_FILES["cifar100n"][0]
    monkeypatch.setitem(LABEL_FILES, "cifar100n", (type(remote)(remote.filename, remote.url, sha256(content)),))
    noise = human_noise("human-noisy", tmp_path, download=True)
    assert file_server.requests == [("CIFAR-100_human.pt", None)]
    np.testing.assert_array_equal(noise.noisy_labels, labels100["noisy_label"])


# --- the published files, where they are on this machine ---------------------------------------------


@pytest.mark.skipif(not REAL.is_dir(), reason="the published CIFAR-N files are not on this machine")
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_the_published_files(dataset):
    path = REAL / FILENAME[dataset]
    assert download.sha256_file(path) == LABEL_FILES[cifar_n.CIFAR_N[dataset][0]][0].sha256
    labels = load_cifar_n_labels(path)
    rates = {s: human_noise_from_labels(labels, s).noise_rate for s in human_settings(dataset)}
    expected = ({"human-aggregate": 0.0901, "human-random1": 0.17234, "human-random2": 0.18122,
                 "human-random3": 0.1764, "human-worst": 0.40208} if dataset == "cifar10" else {"human-noisy": 0.402})
    assert rates == pytest.approx(expected, abs=1e-6)
