import json
import os
import re
import shutil
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
    for command in ("fetch", "corrupt", "train", "estimate", "report", "clothing1m"):
        assert command in out.stdout


def test_clothing1m_hands_its_arguments_to_the_clothing1m_command(tmp_path, capsys):
    config = tmp_path / "clothing1m.yaml"
    config.write_text("epochs: 1\nruns:\n  a: {}\n  b: {}\n")

    # an unknown run: the Clothing1M command's one-line error, named for `pyrobust clothing1m`, status 2
    assert run("clothing1m", "train", "nope", "--config", config, "--set", "epochs=2") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("pyrobust clothing1m train: error: ") and "no run 'nope'; runs: a, b" in err

    # its options pass through unchanged (--set is the Clothing1M parser's, checked before any data is read)
    assert run("clothing1m", "train", "a", "--config", config, "--set", "nope=1") == 2
    assert "--set expects key=value" in capsys.readouterr().err


def test_clothing1m_help_and_usage_errors_are_the_clothing1m_parser_s(capsys):
    with pytest.raises(SystemExit) as exc:
        run("clothing1m", "--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pyrobust clothing1m") and "{train,estimate}" in out

    with pytest.raises(SystemExit) as exc:
        run("clothing1m", "train", "--help")
    assert exc.value.code == 0
    assert "--imagenet-weights" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exc:  # no command: its argparse error, status 2
        run("clothing1m")
    assert exc.value.code == 2
    assert "pyrobust clothing1m: error: the following arguments are required: command" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exc:  # the other subcommands still refuse what they do not know
        run("report", "--results", "r", "--out-dir", "o", "--bogus")
    assert exc.value.code == 2
    assert "pyrobust: error: unrecognized arguments: --bogus" in capsys.readouterr().err


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


# ------------------------------------------------------------------ bad input files: one line, status 2

PAPER_CSV = os.path.join(os.path.dirname(__file__), os.pardir, "workflow", "resources", "table2-paper.csv")


def _half(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid inputs of every subcommand (made by the library as the commands make them), and bad ones:
    another file type in their place, and each cut in half."""
    from pyrobust.data import load
    from pyrobust.experiment.labels import corrupt_labels
    from pyrobust.noise import symmetric

    d = tmp_path_factory.mktemp("inputs")
    corrupt_labels(load("mnist5k"), "symmetric", 0.2, 0).save(d / "noisy.npz")
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=4000).astype(np.float32)
    np.save(d / "probs.npy", probs)
    T = symmetric(10, 0.2).numpy()
    np.save(d / "T_hat.npy", T)
    np.savetxt(d / "T_hat.csv", T, delimiter=",")
    np.save(d / "T4.npy", symmetric(4, 0.2).numpy())
    record = {"dataset": "mnist5k", "model": "fc", "method": "forward", "noise": "symmetric", "N": 0.2, "seed": 0,
              "test_accuracy": 80.0, "epochs": 2}
    (d / "runs").mkdir()
    (d / "runs" / "forward.json").write_text(json.dumps(record))
    shutil.copy(PAPER_CSV, d / "paper.csv")
    (d / "T_hat.json").write_text(json.dumps({"T_hat": T.tolist()}))  # valid JSON, not a result record
    (d / "a_file").write_text("x")
    # wrong: another valid file type where one is expected
    (d / "npz_named.npy").write_bytes((d / "noisy.npz").read_bytes())
    np.savez(d / "other.npz", x=np.zeros(3))
    (d / "columns.csv").write_text("a,b\n1,2\n")
    # truncated
    for name in ("noisy.npz", "probs.npy", "T_hat.npy", "T_hat.csv", "paper.csv"):
        stem, suffix = name.split(".")
        _half(d / name, d / f"{stem}_half.{suffix}")
    for name, content in {
        "truncated": json.dumps(record)[:40],
        "lacks_keys": json.dumps({"test_accuracy": 50.0}),
        "null_accuracy": json.dumps({**record, "test_accuracy": None}),
        "list_method": json.dumps({**record, "method": ["forward"]}),
    }.items():
        (d / name).mkdir()
        (d / name / "forward.json").write_text(content)
    (d / "binary").mkdir()
    (d / "binary" / "forward.json").write_bytes((d / "noisy.npz").read_bytes())
    return d


def _train(d, *more):
    return ["train", "--method", "cross_entropy", "--seed", 0, "--epochs", 1, "--device", "cpu", "--threads", 1,
            "--out-dir", d / "out", *more]


def _train_T_hat(d, T_hat):
    return ["train", "--method", "forward_est", "--seed", 0, "--epochs", 1, "--device", "cpu", "--threads", 1,
            "--noisy-labels", d / "noisy.npz", "--out-dir", d / "out", "--T-hat", d / T_hat]


def _estimate(d, probs="probs.npy", noisy="noisy.npz", out="out/T_hat.npy"):
    return ["estimate", "--probs", d / probs, "--noisy-labels", d / noisy, "--out", d / out]


def _report(d, results="runs", paper=None, out="report"):
    return ["report", "--results", d / results, "--out-dir", d / out, *(["--paper", d / paper] if paper else [])]


def _corrupt(d, out):
    return ["corrupt", "--dataset", "mnist5k", "--noise", "none", "--N", 0, "--seed", 0, "--out", d / out]


# (case, argv, the file the message must start with, what it must say)
BAD_FILES = [
    ("corrupt-out-parent-is-a-file", lambda d: _corrupt(d, "a_file/x.npz"), "a_file/x.npz",
     "a_file is not a directory"),
    ("corrupt-out-is-a-directory", lambda d: _corrupt(d, "runs"), "runs", "is a directory"),
    ("train-labels-missing", lambda d: _train(d, "--noisy-labels", d / "absent.npz"), "absent.npz", "no such file"),
    ("train-labels-npy", lambda d: _train(d, "--noisy-labels", d / "probs.npy"), "probs.npy", "a .npy array"),
    ("train-labels-json", lambda d: _train(d, "--noisy-labels", d / "T_hat.json"), "T_hat.json", "not an .npz"),
    ("train-labels-other-npz", lambda d: _train(d, "--noisy-labels", d / "other.npz"), "other.npz",
     "missing arrays"),
    ("train-labels-truncated", lambda d: _train(d, "--noisy-labels", d / "noisy_half.npz"), "noisy_half.npz",
     "truncated"),
    ("train-labels-directory", lambda d: _train(d, "--noisy-labels", d / "runs"), "runs", "is a directory"),
    ("train-T_hat-missing", lambda d: _train_T_hat(d, "absent.npy"), "absent.npy", "no such file"),
    ("train-T_hat-npz-named-npy", lambda d: _train_T_hat(d, "npz_named.npy"), "npz_named.npy", "an .npz archive"),
    ("train-T_hat-probs", lambda d: _train_T_hat(d, "probs.npy"), "probs.npy", "square"),
    ("train-T_hat-csv-other-columns", lambda d: _train_T_hat(d, "paper.csv"), "paper.csv", "cannot read"),
    ("train-T_hat-npy-truncated", lambda d: _train_T_hat(d, "T_hat_half.npy"), "T_hat_half.npy", "cannot read"),
    ("train-T_hat-csv-truncated", lambda d: _train_T_hat(d, "T_hat_half.csv"), "T_hat_half.csv", "square"),
    ("train-T_hat-other-classes", lambda d: _train_T_hat(d, "T4.npy"), "T4.npy", "4 x 4 matrix, but"),
    ("train-out-dir-is-a-file", lambda d: _train(d, "--noisy-labels", d / "noisy.npz", "--out-dir", d / "a_file"),
     "a_file", "not a directory"),
    ("train-save-probs-is-a-directory",  # checked before training, not after it
     lambda d: _train(d, "--noisy-labels", d / "noisy.npz", "--save-probs", d / "runs"), "runs", "is a directory"),
    ("estimate-probs-missing", lambda d: _estimate(d, probs="absent.npy"), "absent.npy", "No such file"),
    ("estimate-probs-npz", lambda d: _estimate(d, probs="noisy.npz"), "noisy.npz", "an .npz archive"),
    ("estimate-probs-npz-named-npy", lambda d: _estimate(d, probs="npz_named.npy"), "npz_named.npy",
     "an .npz archive"),
    ("estimate-probs-T_hat", lambda d: _estimate(d, probs="T_hat.npy"), "T_hat.npy", "shape (4000, 10)"),
    ("estimate-probs-json", lambda d: _estimate(d, probs="T_hat.json"), "T_hat.json", "not a .npy file"),
    ("estimate-probs-truncated", lambda d: _estimate(d, probs="probs_half.npy"), "probs_half.npy",
     "Failed to read all data"),
    ("estimate-labels-missing", lambda d: _estimate(d, noisy="absent.npz"), "absent.npz", "no such file"),
    ("estimate-labels-npy", lambda d: _estimate(d, noisy="probs.npy"), "probs.npy", "a .npy array"),
    ("estimate-labels-truncated", lambda d: _estimate(d, noisy="noisy_half.npz"), "noisy_half.npz", "truncated"),
    ("estimate-out-is-a-directory", lambda d: _estimate(d, out="runs"), "runs", "is a directory"),
    ("estimate-out-parent-is-a-file", lambda d: _estimate(d, out="a_file/T.npy"), "a_file/T.npy",
     "a_file is not a directory"),
    ("report-results-missing", lambda d: _report(d, results="absent"), "absent", "no such result"),
    ("report-results-npz", lambda d: _report(d, results="noisy.npz"), "noisy.npz", "not a text file"),
    ("report-results-json-not-a-record", lambda d: _report(d, results="T_hat.json"), "T_hat.json",
     "not a result record"),
    ("report-record-truncated", lambda d: _report(d, results="truncated"), "truncated/forward.json", "not valid JSON"),
    ("report-record-lacks-keys", lambda d: _report(d, results="lacks_keys"), "lacks_keys/forward.json", "lacks"),
    ("report-record-null-accuracy", lambda d: _report(d, results="null_accuracy"), "null_accuracy/forward.json",
     "NoneType"),
    ("report-record-list-method", lambda d: _report(d, results="list_method"), "list_method/forward.json",
     "unhashable"),
    ("report-record-binary", lambda d: _report(d, results="binary"), "binary/forward.json", "not a text file"),
    ("report-paper-missing", lambda d: _report(d, paper="absent.csv"), "absent.csv", "No such file"),
    ("report-paper-other-columns", lambda d: _report(d, paper="columns.csv"), "columns.csv", "expected columns"),
    ("report-paper-npz", lambda d: _report(d, paper="noisy.npz"), "noisy.npz", "not a text file"),
    ("report-paper-truncated", lambda d: _report(d, paper="paper_half.csv"), "paper_half.csv", "cut short"),
    ("report-out-dir-is-a-file", lambda d: _report(d, out="a_file"), "a_file", "not a directory"),
]


@pytest.mark.parametrize("argv, file, problem", [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_is_one_line_naming_it(inputs, capsys, monkeypatch, argv, file, problem):
    monkeypatch.delenv("PYROBUST_DEBUG", raising=False)
    argv = argv(inputs)
    assert run(*argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    prefix = f"pyrobust {argv[0]}: error: {inputs / file}: "
    assert lines[0].startswith(prefix), lines[0]
    assert problem in lines[0][len(prefix):]
    assert not (inputs / "out").exists()  # nothing trained, nothing written


def test_good_inputs_pass_the_checks(inputs, capsys):
    # the same files, valid: the checks above are on the inputs, not on the commands
    assert run(*_estimate(inputs, out="estimated/T_hat.npy")) == 0
    assert run(*_report(inputs, paper="paper.csv", out="estimated/report")) == 0
    assert run(*_report(inputs, results="runs/forward.json", out="estimated/report1")) == 0
    assert "wrote" in capsys.readouterr().out


def test_debug_gives_the_traceback_of_a_bad_file(inputs, monkeypatch):
    monkeypatch.setenv("PYROBUST_DEBUG", "1")
    with pytest.raises(ValueError, match="an .npz archive") as info:
        run(*_estimate(inputs, probs="noisy.npz"))
    assert "noisy.npz" in str(info.value)


def test_an_internal_error_keeps_its_traceback(inputs, monkeypatch):
    """Not every exception is the user's: a KeyError or TypeError of the code itself is not turned into a
    one-line message, even in a command that reads files."""
    import pyrobust.estimate
    import pyrobust.experiment.report

    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(pyrobust.estimate, "estimate_transition_matrix", broken)
    with pytest.raises(KeyError, match="internal"):
        run(*_estimate(inputs, out="bug/T_hat.npy"))

    def broken_summary(*args, **kwargs):
        raise TypeError("internal")

    monkeypatch.setattr(pyrobust.experiment.report, "summarize", broken_summary)
    with pytest.raises(TypeError, match="internal"):
        run(*_report(inputs, out="bug/report"))


def test_a_multi_line_message_is_printed_on_one_line(tmp_path, capsys):
    # a data set that cannot be downloaded: the message lists the files to place by hand, on one line
    assert run("fetch", "mnist", "--data-root", tmp_path, "--quiet", "--base-url", f"file://{tmp_path}/nowhere") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyrobust fetch: error: cannot download mnist")
    assert "t10k-labels-idx1-ubyte.gz" in err


# ------------------------------------------------------------------------------ a log one can follow


def test_train_logs_one_line_per_epoch_to_a_file(tmp_path):
    """As a workflow or SLURM job runs it (`> log 2>&1`): a flushed line per epoch naming the run, and each
    method's result line after its epochs."""
    noisy = tmp_path / "noisy.npz"
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "symmetric", "--N", 0.2, "--seed", 3, "--out", noisy) == 0
    log = tmp_path / "log"
    console_script = os.path.join(os.path.dirname(sys.executable), "pyrobust")
    with open(log, "w") as out:
        argv = ["train", "--method", "cross_entropy", "--method", "forward", "--noisy-labels", noisy, "--seed", 3,
                "--out-dir", tmp_path / "runs", "--epochs", 2, "--threads", 1, "--device", "cpu"]
        subprocess.run([console_script, *map(str, argv)], stdout=out, stderr=subprocess.STDOUT, check=True)
    lines = log.read_text().splitlines()
    pattern = (r"mnist5k/fc/{} symmetric N=0\.2 seed 3: epoch {}/2 loss \d+\.\d{{4}} val_loss \d+\.\d{{4}} "
               r"val_acc \d+\.\d\d% best \d \d+\.\d\d s")
    expected = [pattern.format("cross_entropy", 1), pattern.format("cross_entropy", 2), r"cross_entropy: test accuracy",
                pattern.format("forward", 1), pattern.format("forward", 2), r"forward: test accuracy"]
    assert len(lines) == len(expected), lines
    for line, regex in zip(lines, expected):
        assert re.match(regex, line), (line, regex)
    record = json.loads((tmp_path / "runs" / "forward.json").read_text())
    assert lines[4].split(" loss ")[1].startswith(f"{record['train_loss'][1]:.4f} val_loss {record['val_loss'][1]:.4f}")


def _posteriors(n=600, C=4, seed=0):
    """Noisy posteriors T^T e_y of perfect examples (with a little noise), their labels, and T."""
    rng = np.random.default_rng(seed)
    T = np.full((C, C), 0.1 / (C - 1))
    np.fill_diagonal(T, 0.9)
    y = rng.integers(0, C, n)
    probs = np.eye(C)[y] @ T + rng.uniform(0, 1e-3, (n, C))
    return probs / probs.sum(1, keepdims=True), rng.integers(0, C, n), T


def test_estimate_reads_any_users_probs_and_labels_as_npy_or_csv(tmp_path, capsys):
    probs, labels, T = _posteriors()
    np.savetxt(tmp_path / "probs.csv", probs, delimiter=",", header=",".join(f"p{j}" for j in range(4)),
               comments="")
    np.save(tmp_path / "labels.npy", labels)
    np.savetxt(tmp_path / "labels.csv", labels, fmt="%d")
    np.save(tmp_path / "T.npy", T)
    assert run("estimate", "--probs", tmp_path / "probs.csv", "--estimator", "vertex", "--estimator", "dual_t",
               "--labels", tmp_path / "labels.npy", "--out", tmp_path / "v.npy", tmp_path / "d.npy") == 0
    assert "no true T given" in capsys.readouterr().out
    vertex = json.loads((tmp_path / "v.json").read_text())
    assert vertex["method"] == "vertex" and vertex["estimation_error"] is None and vertex["T"] is None
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), T, atol=2e-3)
    # the same with the labels as CSV and the true T given: the error is reported
    assert run("estimate", "--probs", tmp_path / "probs.csv", "--estimator", "dual_t", "--labels",
               tmp_path / "labels.csv", "--T", tmp_path / "T.npy", "--out", tmp_path / "d2.npy") == 0
    dual = json.loads((tmp_path / "d2.json").read_text())
    np.testing.assert_array_equal(np.load(tmp_path / "d2.npy"), np.load(tmp_path / "d.npy"))
    assert dual["estimation_error"]["mae"] == pytest.approx(np.abs(np.load(tmp_path / "d.npy") - T).mean())


@pytest.mark.parametrize("argv, problem", [
    (["--estimator", "vertex", "--estimator", "dual_t", "--out", "a.npy"], "2 estimator(s)"),
    (["--estimator", "dual_t", "--out", "a.npy"], "needs the noisy labels"),
    (["--estimator", "dual_t", "--labels", "short.npy", "--out", "a.npy"], "shape (5, C) for the labels of short.npy"),
    (["--T", "T3.npy", "--out", "a.npy"], "a 3 x 3 matrix"),
    (["--labels", "labels.txt", "--out", "a.npy"], "not a .npy file; expected labels"),
])
def test_estimate_user_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, problem):
    probs, labels, _ = _posteriors()
    np.save(tmp_path / "probs.npy", probs)
    np.save(tmp_path / "short.npy", labels[:5])
    np.save(tmp_path / "T3.npy", np.eye(3))
    (tmp_path / "labels.txt").write_text("0\n")
    monkeypatch.chdir(tmp_path)
    assert run("estimate", "--probs", "probs.npy", *argv) == 2
    err = capsys.readouterr().err
    assert problem in err and len(err.strip().splitlines()) == 1


def test_train_takes_each_estimators_T_hat_by_name(tmp_path, capsys):
    noisy = tmp_path / "noisy.npz"
    assert run("corrupt", "--dataset", "mnist5k", "--noise", "symmetric", "--N", 0.2, "--seed", 0, "--out", noisy) == 0
    own, vertex = tmp_path / "own.npy", tmp_path / "vertex.npy"
    np.save(own, np.full((10, 10), 0.02) + 0.8 * np.eye(10))
    np.save(vertex, np.full((10, 10), 0.01) + 0.9 * np.eye(10))
    common = ["--noisy-labels", noisy, "--seed", 0, "--out-dir", tmp_path / "runs", "--epochs", 1, "--device", "cpu"]
    assert run("train", "--method", "forward_est", "--method", "forward_vertex", "--T-hat", own,
               "--T-hat", f"vertex={vertex}", *common) == 0
    record = json.loads((tmp_path / "runs" / "forward_vertex.json").read_text())
    np.testing.assert_allclose(record["T_hat"], np.load(vertex))
    assert record["estimator"] == "vertex"
    assert run("train", "--method", "forward_vertex", "--T-hat", f"nope={vertex}", *common) == 2
    assert "unknown estimator 'nope'" in capsys.readouterr().err
    assert run("train", "--method", "forward_vertex", "--T-hat", own, *common) == 2
    assert "forward_vertex needs the T_hat of vertex (--T-hat vertex=FILE)" in capsys.readouterr().err


def test_estimate_reads_pandas_csvs_and_names_the_files_of_bad_inputs(tmp_path, capsys, monkeypatch):
    import pandas as pd

    probs, labels, T = _posteriors()
    monkeypatch.chdir(tmp_path)
    pd.DataFrame(probs, columns=list("abcd")).to_csv("probs.csv")  # a header and pandas' index column
    pd.Series(labels.astype(float), name="label").to_csv("labels.csv", index=False)  # whole floats, header
    np.save("floats.npy", labels.astype(float))
    np.save("fractions.npy", labels + 0.5)
    np.save("negative.npy", labels - 1)
    np.save("probs.npy", probs)
    assert run("estimate", "--probs", "probs.csv", "--labels", "labels.csv", "--estimator", "dual_t",
               "--out", "a.npy") == 0
    assert run("estimate", "--probs", "probs.npy", "--labels", "floats.npy", "--estimator", "dual_t",
               "--out", "b.npy") == 0
    np.testing.assert_array_equal(np.load("a.npy"), np.load("b.npy"))
    capsys.readouterr()
    for argv, problem in [
        (["--labels", "fractions.npy", "--estimator", "dual_t", "--out", "c.npy"], "fractions.npy: labels must be whole"),
        (["--labels", "negative.npy", "--estimator", "dual_t", "--out", "c.npy"], "probs.npy, negative.npy: labels holds class -1"),
        (["--argmax", "--estimator", "vertex", "--out", "c.npy"], "give one or the other"),
        (["--out", "c.json"], "written as .npy"),
        (["--estimator", "vertex", "--estimator", "argmax", "--out", "c.npy", "c.npy"], "a file of its own"),
    ]:
        assert run("estimate", "--probs", "probs.npy", *argv) == 2
        assert problem in capsys.readouterr().err
