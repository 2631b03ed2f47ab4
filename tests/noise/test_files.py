"""pyrobust.noise.files: a user's T read from .npy or .csv, an untrusted file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrobust import noise


def test_load_transition_matrix_npy_and_csv(tmp_path):
    T = noise.asymmetric("cifar10", 0.3)
    np.save(tmp_path / "T.npy", T.numpy())
    np.savetxt(tmp_path / "T.csv", T.numpy(), delimiter=",")
    torch.testing.assert_close(noise.load_transition_matrix(tmp_path / "T.npy"), T, rtol=0, atol=0)
    torch.testing.assert_close(noise.load_transition_matrix(str(tmp_path / "T.csv")), T, rtol=0, atol=1e-15)


def test_load_transition_matrix_rejects_bad_files_naming_them(tmp_path):
    cases = {
        "pickled.npy": (np.array([{"T": 1}], dtype=object), "pickled.npy"),
        "rect.npy": (np.full((2, 3), 1 / 3), r"rect.npy: transition matrix must be square"),
        "rows.npy": (np.array([[0.5, 0.4], [0.0, 1.0]]), r"rows.npy: the transition matrix is not row-stochastic"),
        "negative.npy": (np.array([[1.5, -0.5], [0.0, 1.0]]), r"negative.npy: the transition matrix has a negative"),
        "text.npy": (np.array([["a", "b"], ["c", "d"]]), r"text.npy: transition matrix must hold numbers"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(ValueError, match=message):
            noise.load_transition_matrix(tmp_path / name)
    (tmp_path / "bad.csv").write_text("0.5,0.5\n0.5,zebra\n")
    with pytest.raises(ValueError, match="bad.csv"):
        noise.load_transition_matrix(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"T.txt: unsupported transition matrix file type '.txt'"):
        noise.load_transition_matrix(tmp_path / "T.txt")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        noise.load_transition_matrix(tmp_path / "missing.npy")


def test_load_transition_matrix_names_the_file_of_another_type_or_a_truncated_one(tmp_path):
    """Whatever the bytes: a ValueError starting with "<path>: ", never numpy's own exception."""
    T = noise.symmetric(4, 0.2).numpy()
    np.save(tmp_path / "T.npy", T)
    np.savetxt(tmp_path / "T.csv", T, delimiter=",")
    npy, csv = (tmp_path / "T.npy").read_bytes(), (tmp_path / "T.csv").read_bytes()
    np.savez(tmp_path / "archive.npz", T=T)
    cases = {
        "archive.npy": ((tmp_path / "archive.npz").read_bytes(), "an .npz archive"),
        "json.npy": (b'{"T": [[1]]}', "not a .npy file"),
        "empty.npy": (b"", "not a .npy file"),
        "half.npy": (npy[: len(npy) // 2], "cannot read"),
        "header.npy": (npy[:20], "cannot read"),
        "half.csv": (csv[: len(csv) // 2], "square"),
        "empty.csv": (b"", "holds no numbers"),
    }
    for name, (content, problem) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            noise.load_transition_matrix(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: ") and problem in str(info.value), str(info.value)
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(ValueError, match="folder.npy: is a directory"):
        noise.load_transition_matrix(tmp_path / "folder.npy")
    with pytest.raises(FileNotFoundError) as info:
        noise.load_transition_matrix(tmp_path / "absent.csv")
    assert str(info.value) == f"{tmp_path / 'absent.csv'}: no such file"
