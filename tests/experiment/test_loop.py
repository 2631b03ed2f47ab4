"""pyrobust.experiment.loop: the split, determinism, the snapshot and the choice of the kept epoch."""

import io
import re
import subprocess
import sys

import torch

from pyrobust.experiment import loop, optim, run
from pyrobust.experiment.run import train
from pyrobust.models import build_model


def test_split_is_fixed_by_the_seed():
    tr1, va1 = loop.split(1200, 0.1, 5)
    tr2, va2 = loop.split(1200, 0.1, 5)
    assert torch.equal(tr1, tr2) and torch.equal(va1, va2)
    assert len(va1) == 120 and len(tr1) == 1080 and len(set(tr1.tolist()) | set(va1.tolist())) == 1200
    assert not torch.equal(va1, loop.split(1200, 0.1, 6)[1])


def test_snapshot_restores_the_taken_state_in_place(cfg):
    torch.manual_seed(0)
    model = build_model("fc", 10, bn_head=True)  # parameters and batch-norm buffers
    opt = optim.make_optimizer(cfg(lr=0.1), model)

    def train_steps(n):
        for _ in range(n):
            loss = model(torch.rand(16, 784)).logsumexp(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    snapshot = loop.Snapshot(model)
    storages = [t.data_ptr() for t in model.state_dict().values()]
    train_steps(2)
    snapshot.take()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    train_steps(3)
    assert not torch.equal(model.state_dict()["0.0.weight"], expected["0.0.weight"])
    assert model.state_dict()["1.num_batches_tracked"] == 5
    snapshot.restore()
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(state[k], v), k
    # restored into the model's own tensors: the optimiser still holds the parameters it updates
    assert [t.data_ptr() for t in state.values()] == storages
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], model.parameters()))


def test_deterministic_mode_is_set_inside_and_restored_after():
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with loop.deterministic(True):
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with loop.deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_adagrad_run_does_not_import_the_compiler():
    # torch.optim optimizers and torch.use_deterministic_algorithms import torch._dynamo / torch._inductor:
    # about a second of every fresh process (a workflow job), half an MNIST run
    code = (
        "import sys, torch\n"
        "from pyrobust.data import Dataset\n"
        "from pyrobust.experiment.config import TrainConfig\n"
        "from pyrobust.experiment.run import train\n"
        "g = torch.Generator().manual_seed(0)\n"
        "data = Dataset(name='mnist5k', x_train=torch.rand(200, 784, generator=g), y_train=torch.arange(200) % 10,\n"
        "               x_test=torch.rand(50, 784, generator=g), y_test=torch.arange(50) % 10, num_classes=10)\n"
        "train(TrainConfig.paper('mnist5k', 'forward', noise='symmetric', N=0.2, epochs=2, device='cpu', threads=1),\n"
        "      data=data, progress=False)\n"
        "print(sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_keeps_the_lowest_validation_loss_epoch(small, cfg, monkeypatch):
    # Replace the validation loss by a scripted curve; the kept weights must be those after epoch 2.
    curve = iter([0.9, 0.5, 0.7, float("nan")])
    snapshots = []
    real_evaluate = loop.evaluate

    def scripted(model, loss_fn, x, y, prep, config):
        if loss_fn is None:  # the test-set evaluation
            return real_evaluate(model, loss_fn, x, y, prep, config)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(curve), 50.0

    monkeypatch.setattr(loop, "evaluate", scripted)
    kept = {}
    real_build = run.build_model

    def capture(*args, **kwargs):
        kept["model"] = real_build(*args, **kwargs)
        return kept["model"]

    monkeypatch.setattr(run, "build_model", capture)
    record = train(cfg(epochs=4), data=small, progress=False)
    assert record["best_epoch"] == 2
    assert record["val_loss"] == [0.9, 0.5, 0.7, None]  # NaN is written as null
    for k, v in kept["model"].state_dict().items():
        assert torch.equal(v, snapshots[1][k]), k


def test_selected_epoch_equals_a_run_stopped_there(small, cfg):
    # On CPU a run is deterministic, so training only up to the selected epoch gives the same test accuracy.
    long = train(cfg(epochs=6, lr=0.05), data=small, progress=False)
    best = long["best_epoch"]
    assert long["val_loss"][best - 1] == min(long["val_loss"])
    short = train(cfg(epochs=best, lr=0.05), data=small, progress=False)
    assert short["best_epoch"] == best
    assert short["test_accuracy"] == long["test_accuracy"]


EPOCH_LINE = re.compile(
    r"mnist5k/fc/cross_entropy asymmetric N=0\.6 seed 1: epoch (\d)/2 loss (\S+) val_loss (\S+) val_acc (\S+)% "
    r"best (\d|-) (\d+\.\d\d) s"
)


def test_off_a_terminal_each_epoch_is_one_line_and_no_number_changes(small, cfg, capsys):
    quiet = train(cfg(epochs=2), data=small, progress=False)
    assert capsys.readouterr().err == ""
    logged = train(cfg(epochs=2), data=small, progress=None)  # pytest's stderr is not a terminal
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    for epoch, line in enumerate(lines, 1):
        match = EPOCH_LINE.fullmatch(line)
        assert match, line
        assert int(match[1]) == epoch
        assert float(match[2]) == round(logged["train_loss"][epoch - 1], 4)
        assert float(match[3]) == round(logged["val_loss"][epoch - 1], 4)
        assert float(match[4]) == round(logged["val_accuracy"][epoch - 1], 2)
    assert lines[-1].split(" best ")[1].startswith(f"{logged['best_epoch']} ")
    for key in ("train_loss", "val_loss", "val_accuracy", "best_epoch", "test_accuracy"):
        assert logged[key] == quiet[key], key


def test_on_a_terminal_the_bar_and_no_lines(small, cfg, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(cfg(epochs=2), data=small, progress=None)
    shown = terminal.getvalue()
    # tqdm's bar: "mnist5k/fc/cross_entropy: 100%|...| 2/2 [..., 1.2epoch/s]"
    assert "mnist5k/fc/cross_entropy" in shown and "epoch" in shown
    assert not EPOCH_LINE.search(shown)


def test_epoch_line_of_a_diverged_run(cfg):
    history = {"train_loss": [float("nan")], "val_loss": [float("nan")], "val_accuracy": [10.0]}
    line = loop.epoch_line(cfg(method="backward", epochs=40), 1, history, None, 0.123)
    assert line == ("mnist5k/fc/backward asymmetric N=0.6 seed 1: epoch 1/40 loss nan val_loss nan val_acc 10.00% "
                    "best - 0.12 s")
