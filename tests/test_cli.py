import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyrobust.cli import main


def run(*argv):
    return main([str(a) for a in argv])


def test_round_trip_corrupt_train_estimate_train(tmp_path, capsys):
    noisy = tmp_path / "noisy.npz"
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "asymmetric", "--N", 0.6, "--seed", 0,
               "--out", noisy) == 0
    with np.load(noisy, allow_pickle=False) as f:
        assert f["labels"].shape == (4000,) and f["T"].shape == (10, 10)

    probs = tmp_path / "probs.npy"
    out = tmp_path / "runs"
    assert run("train", "--method", "cross_entropy", "--method", "forward", "--noisy-labels", noisy,
               "--seed", 0, "--out-dir", out, "--save-probs", probs, "--epochs", 2, "--threads", 1,
               "--device", "cpu", "--set", "batch_size=256", "--set", "dropout=0.2") == 0
    ce = json.loads((out / "cross_entropy.json").read_text())
    assert (ce["dataset"], ce["model"], ce["noise"], ce["N"], ce["seed"], ce["epochs"]) == (
        "mnist5k", "fc", "asymmetric", 0.6, 0, 2)
    assert ce["config"]["batch_size"] == 256 and ce["config"]["dropout"] == 0.2 and ce["threads"] == 1
    assert (out / "forward.json").exists()
    assert np.load(probs, allow_pickle=False).shape == (4000, 10)

    T_hat = tmp_path / "T_hat.npy"
    assert run("estimate", "--probs", probs, "--noisy-labels", noisy, "--out", T_hat) == 0
    summary = json.loads((tmp_path / "T_hat.json").read_text())
    T_hat_array = np.load(T_hat, allow_pickle=False)
    assert T_hat_array.shape == (10, 10)
    np.testing.assert_allclose(T_hat_array.sum(1), 1.0, atol=1e-6)
    assert summary["estimation_error"]["mae"] == pytest.approx(np.abs(T_hat_array - np.array(summary["T"])).mean())

    assert run("train", "--method", "forward_est", "--noisy-labels", noisy, "--seed", 0, "--out-dir", out,
               "--T-hat", T_hat, "--epochs", 1, "--device", "cpu") == 0
    est = json.loads((out / "forward_est.json").read_text())
    np.testing.assert_allclose(est["T_hat"], T_hat_array)
    assert est["estimation_error"] == pytest.approx(summary["estimation_error"])
    assert "forward_est: test accuracy" in capsys.readouterr().out


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    noisy = tmp_path / "noisy.npz"
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "symmetric", "--N", 0.2, "--seed", 1, "--out", noisy) == 0
    capsys.readouterr()

    with pytest.raises(SystemExit) as exc:  # an unknown name is a usage error, listing the known ones
        run("train", "--method", "nope", "--noisy-labels", noisy, "--seed", 0, "--out-dir", tmp_path)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "pyrobust train: error: argument --method: unknown method 'nope'" in err and "forward" in err
    assert "Traceback" not in err

    assert run("train", "--method", "forward", "--noisy-labels", noisy, "--seed", 0, "--out-dir", tmp_path,
               "--set", "learning_rate=1") == 2
    assert "learning_rate" in capsys.readouterr().err

    assert run("train", "--method", "forward", "--noisy-labels", noisy, "--seed", 0, "--out-dir", tmp_path,
               "--set", "seed=3") == 2
    assert "--seed" in capsys.readouterr().err

    assert run("train", "--method", "forward_est", "--noisy-labels", noisy, "--seed", 0, "--out-dir", tmp_path) == 2
    assert "--T-hat" in capsys.readouterr().err

    assert run("train", "--method", "forward", "--noisy-labels", tmp_path / "absent.npz", "--seed", 0,
               "--out-dir", tmp_path) == 2
    assert "absent.npz" in capsys.readouterr().err

    # a data set whose files are not there: the loader's message, no traceback
    assert run("corrupt", "--dataset", "mnist", "--noise", "none", "--N", 0, "--seed", 0, "--out", tmp_path / "x.npz",
               "--data-root", tmp_path / "empty") == 2
    err = capsys.readouterr().err
    assert "pyrobust corrupt: error:" in err and "empty" in err
    assert not (tmp_path / "x.npz").exists()


def test_unknown_dataset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        run("corrupt", "--dataset", "svhn", "--noise", "none", "--N", 0, "--seed", 0, "--out", "x.npz")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown data set 'svhn'; known: mnist5k, mnist" in err


def test_version_and_python_dash_m():
    from pyrobust import __version__

    console_script = os.path.join(os.path.dirname(sys.executable), "pyrobust")  # the installed entry point
    for command in ([sys.executable, "-m", "pyrobust", "--version"], [console_script, "--version"]):
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"pyrobust {__version__}"


def test_console_help_is_quick_and_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "pyrobust.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("fetch", "corrupt", "train", "estimate", "report"):
        assert command in out.stdout


def test_corrupt_writes_one_file_per_seed_as_single_seed_runs_do(tmp_path, capsys):
    outs = [tmp_path / "many" / f"seed{s}.npz" for s in (0, 3)]
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "asymmetric", "--N", 0.2, "--seed", 0, 3,
               "--out", *outs) == 0
    for seed, out in zip((0, 3), outs):
        single = tmp_path / f"single{seed}.npz"
        assert run("corrupt", "--dataset", "mnist5k", "--noise", "asymmetric", "--N", 0.2, "--seed", seed,
                   "--out", single) == 0
        with np.load(out, allow_pickle=False) as a, np.load(single, allow_pickle=False) as b:
            np.testing.assert_array_equal(a["labels"], b["labels"])
            assert int(a["seed"]) == seed
    with np.load(outs[0], allow_pickle=False) as a, np.load(outs[1], allow_pickle=False) as b:
        assert (a["labels"] != b["labels"]).any()
    capsys.readouterr()
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "none", "--N", 0, "--seed", 0, 1,
               "--out", tmp_path / "x.npz") == 2
    assert "one --out per --seed" in capsys.readouterr().err
