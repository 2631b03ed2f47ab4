"""The workflow's real-noise settings: CIFAR-N's human label sets as noise settings of CIFAR-10/100 (dry runs:
their labels job, the download of their label file, the configuration's checks), and Clothing1M's Table 3
(workflow/rules/clothing1m.smk: its DAG from the runs file, the torchrun command and the resources of its
jobs; end to end on a tiny Clothing1M tree on the CPU, one gloo process)."""

import importlib.util
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, job_counts, job_resources, run_snakemake, snakemake_env

from pyrobust import catalog
from pyrobust.data import cifar_n

HUMAN = {
    "datasets": ["cifar10", "cifar100"],
    "methods": ["cross_entropy", "forward", "forward_est"],
    "dataset_settings": {
        "cifar10": {"models": ["resnet14"], "settings": [
            {"noise": "human-worst", "N": 0}, {"noise": "human-aggregate", "N": 0}, {"noise": "symmetric", "N": 0.2}]},
        "cifar100": {"settings": [{"noise": "human-noisy", "N": 0}]},
    },
}  # fmt: skip


def write(workdir, config, name="human.yaml"):
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


# ----------------------------------------------------------------------------------------- human noise


def test_human_noise_settings_are_runs_of_cifar(workdir):
    human = write(workdir, HUMAN)
    # 3 + 1 labels jobs, one run each (1 seed, one network), no download without `fetch`
    assert job_counts("--configfile", human, cwd=workdir) == {
        "corrupt_labels": 4, "train_without_T_hat": 4, "estimate_transition_matrix": 4, "train_with_T_hat": 4,
        "report": 1, "all": 1,
    }  # fmt: skip
    output = run_snakemake("-n", "-p", "--configfile", human, cwd=workdir)
    # N is 0, a placeholder, in paths and on the command line
    assert ("pyrobust corrupt --dataset cifar10 --noise human-worst --N 0 --seed 0 "
            "--out results/cifar10/labels/human-worst-0/seed0.npz") in output
    assert "--noise human-noisy --N 0 --seed 0 --out results/cifar100/labels/human-noisy-0/seed0.npz" in output
    assert "--method forward_est" in output  # and the T-hat of the human labels' cross-entropy network:
    assert "--T-hat results/cifar10/resnet14/human-aggregate-0/seed0/T_hat.npy" in output


def test_with_fetch_the_label_file_is_downloaded_beside_cifar(workdir):
    human = write(workdir, {**HUMAN, "fetch": True, "base_url": "http://127.0.0.1:9/mirror"})
    counts = job_counts("--configfile", human, cwd=workdir)
    assert counts["fetch_dataset"] == 2 and counts["fetch_label_files"] == 2
    output = run_snakemake("-n", "-p", "--configfile", human, cwd=workdir)
    for files in ("cifar10n", "cifar100n"):
        assert (f"pyrobust fetch {files} --base-url http://127.0.0.1:9/mirror > logs/data/{files}.fetch.log"
                in output)
    # the labels job of a human setting waits for its label file, the others do not
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", output)
    corrupt = {re.search(r"--noise (\S+)", job).group(1): job for job in jobs if "pyrobust corrupt" in job}
    assert "results/data/cifar10n.fetched" in corrupt["human-worst"]
    assert "results/data/cifar100n.fetched" in corrupt["human-noisy"]
    assert "cifar10n.fetched" not in corrupt["symmetric"]
    # the label files' names are pyrobust's (the rule file cannot import the torch-dependent module)
    rules = (ROOT / "workflow/rules/cifar_n.smk").read_text()
    assert all(f'"{d}": "{files}"' in rules for d, (files, _) in cifar_n.CIFAR_N.items())
    # the default table fetches nothing of CIFAR-N
    assert "fetch_label_files" not in job_counts("--config", "fetch=true", cwd=workdir)


@pytest.mark.parametrize("setting,message", [
    ({"cifar100": {"settings": [{"noise": "human-worst", "N": 0}]}},
     "dataset_settings.cifar100.settings[0]: noise 'human-worst' is a human label set (CIFAR-N) of cifar10, "
     "not of cifar100; cifar100's human noise settings: human-noisy"),
    ({"mnist5k": {"settings": [{"noise": "human-noisy", "N": 0}]}},
     "dataset_settings.mnist5k.settings[0]: noise 'human-noisy' is a human label set (CIFAR-N) of cifar100, "
     "not of mnist5k; mnist5k's human noise settings: none"),
    ({"cifar10": {"settings": [{"noise": "human-aggregate", "N": 0.09}]}},
     "dataset_settings.cifar10.settings[0]: noise 'human-aggregate' takes CIFAR-N's human labels as they are: "
     "its N must be 0"),
])  # fmt: skip
def test_a_human_setting_of_another_data_set_or_level_is_refused(workdir, setting, message):
    config = write(workdir, {"dataset_settings": setting})
    result = run_snakemake("-n", "--configfile", config, cwd=workdir, check=False)
    assert result.returncode != 0
    assert f"Invalid configuration: {message}" in result.stdout + result.stderr


def test_the_schema_takes_the_noise_kinds_of_the_catalogue(workdir):
    result = run_snakemake("-n", "--config", "dataset_settings={cifar10: {settings: [{noise: human-best, N: 0}]}}",
                           cwd=workdir, check=False)
    assert result.returncode != 0
    assert f"is not one of {list(catalog.NOISE_KINDS)}" in result.stdout + result.stderr


# ----------------------------------------------------------------------------------------- Clothing1M

# (the target after an option of one value: job_counts puts `--quiet rules` first, which takes several)
TABLE3 = ["--cores", "1", "reports/table3.csv"]
C1M_RULES = {"clothing1m_train", "clothing1m_train_saving_probs", "clothing1m_estimate", "clothing1m_report"}


def test_clothing1m_is_off_by_default(workdir):
    assert not C1M_RULES & set(job_counts(cwd=workdir))


def test_table3_dag_is_the_runs_file(workdir):
    c1m = ["--config", "clothing1m=config/clothing1m.yaml"]
    # config/clothing1m.yaml: #4 (saves its softmax), #5-#8, and the two T-hat runs
    assert job_counts(*TABLE3, *c1m, cwd=workdir) == {
        "clothing1m_train": 6, "clothing1m_train_saving_probs": 1, "clothing1m_estimate": 1, "clothing1m_report": 1,
    }  # fmt: skip
    # the default target gets Table 3 too
    counts = job_counts(*c1m, cwd=workdir)
    assert counts["clothing1m_report"] == 1 and counts["report"] == 1
    # #8 alone needs #6's weights; forward_est_1m needs T-hat, hence #4's softmax
    some = ["--config", "clothing1m={runs_file: config/clothing1m.yaml, runs: [forward_1m_ft_50k, forward_est_1m]}"]
    assert job_counts(*TABLE3, *some, cwd=workdir) == {
        "clothing1m_train": 3, "clothing1m_train_saving_probs": 1, "clothing1m_estimate": 1, "clothing1m_report": 1,
    }  # fmt: skip


def test_a_training_job_asks_for_its_gpus_and_launches_one_process_each(workdir):
    config = ["--config", "clothing1m={runs_file: config/clothing1m.yaml, gpus: 4, runtime: 600, set: {workers: 16}}",
              "cuda_resources={slurm_partition: gpu}"]
    resources = job_resources(*TABLE3, *config, cwd=workdir)
    for rule in ("clothing1m_train", "clothing1m_train_saving_probs"):
        for job in resources[rule]:
            assert (job["gpu"], job["runtime"], job["slurm_partition"]) == ("4", "600", "gpu")
    assert "gpu" not in resources["clothing1m_estimate"][0]
    output = run_snakemake("-n", "-p", "reports/table3.csv", *config, cwd=workdir)
    assert ("torchrun --standalone --nnodes 1 --nproc-per-node 4 -m pyrobust.experiment.clothing1m train "
            "forward_1m_ft_50k --config config/clothing1m.yaml --device cuda "
            "--record results/clothing1m/forward_1m_ft_50k.json --checkpoint results/clothing1m/forward_1m_ft_50k.pt "
            "--init-checkpoint results/clothing1m/forward_1m.pt --set workers=16 > logs/clothing1m/forward_1m_ft_50k.log"
            ) in output  # fmt: skip
    assert "--save-probs results/clothing1m/ce_1m.probs.npy" in output
    assert ("pyrobust clothing1m estimate ce_1m --config config/clothing1m.yaml --probs results/clothing1m/ce_1m.probs.npy "
            "--estimator percentile --out results/clothing1m/T_hat-percentile.npy") in output  # fmt: skip
    assert "--T-hat results/clothing1m/T_hat-percentile.npy" in output


@pytest.mark.parametrize("clothing1m,message", [
    ("{runs_file: config/clothing1m.yaml, runs: [ce_2m]}", "no run(s) ['ce_2m']"),
    ("{runs_file: absent.yaml}", "absent.yaml: no such runs file"),
    ("{runs_file: config/clothing1m.yaml, gpu: 2}", "Additional properties are not allowed ('gpu' was unexpected)"),
])  # fmt: skip
def test_a_bad_clothing1m_section_is_named(workdir, clothing1m, message):
    result = run_snakemake("-n", "--config", f"clothing1m={clothing1m}", cwd=workdir, check=False)
    assert result.returncode != 0
    assert "Invalid configuration: clothing1m" in result.stdout + result.stderr
    assert message in result.stdout + result.stderr


def clothing1m_fixture():
    """tests/experiment/test_clothing1m_run.py's tiny tree and tiny settings (imported from that file)."""
    spec = importlib.util.spec_from_file_location(
        "clothing1m_fixture", ROOT / "tests" / "experiment" / "test_clothing1m_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_tree, module.TINY


@pytest.mark.slow
def test_table3_end_to_end_on_a_tiny_tree_on_the_cpu(workdir, tmp_path):
    make_tree, tiny = clothing1m_fixture()
    make_tree(tmp_path / "data" / "clothing1m")
    runs = {
        "ce_1m": {"row": 4, "method": "cross_entropy", "train_set": "noisy", "save_probs": True},
        "forward_1m": {"row": 6, "method": "forward", "train_set": "noisy"},
        "forward_1m_ft_50k": {"row": 8, "method": "cross_entropy", "train_set": "clean", "init_from": "forward_1m"},
        "forward_est_1m": {"method": "forward_est", "train_set": "noisy"},
    }
    settings = {**tiny, "epochs": 1, "device": "auto", "out_dir": "elsewhere"}  # the workflow's paths win
    (workdir / "c1m.yaml").write_text(yaml.safe_dump({**settings, "runs": runs}))
    config = write(workdir, {"clothing1m": {"runs_file": "c1m.yaml", "gpus": 0, "threads": 1},
                             "data_root": str(tmp_path / "data")}, name="config-c1m.yaml")
    env = snakemake_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # torchrun
    run_snakemake("--cores", "2", "reports/table3.csv", "--configfile", config, cwd=workdir, env=env, timeout=300)

    table = pd.read_csv(workdir / "reports/table3.csv", keep_default_na=False, na_values=[""])
    assert table["row"].tolist()[:8] == list(range(1, 9)) and pd.isna(table["row"].iloc[8])
    ours = table.set_index("run").loc[list(runs)]
    assert ours["accuracy"].between(0, 100).all() and (ours["world_size"] == 1).all()
    assert ours.loc["forward_1m_ft_50k", "init"] == "#6" and ours.loc["forward_1m", "T"] == "clean 50k"
    assert ours.loc["forward_est_1m", "T"] == "estimated (percentile)"
    assert ours.loc["forward_1m", "paper_accuracy"] == 69.84 and pd.isna(ours.loc["forward_est_1m", "paper_accuracy"])
    assert table[table.row <= 3]["accuracy"].isna().all()  # AlexNet rows: the paper's numbers only
    markdown = (workdir / "reports/table3.md").read_text()
    assert "| 6 | 14-layer ResNet | forward | scratch | 1M | clean 50k |" in markdown
    assert "| 8 | 14-layer ResNet | cross-entropy | #6 | 50k |" in markdown and "| 5 | ResNet-50 | backward |" in markdown
    # every file is where the rules say (the runs file's out_dir is not written)
    written = sorted(p.name for p in (workdir / "results/clothing1m").iterdir())
    assert written == sorted([*(f"{r}.json" for r in runs), *(f"{r}.pt" for r in runs), "ce_1m.probs.npy",
                              "T_hat-percentile.npy", "T_hat-percentile.json"])
    assert not (workdir / "elsewhere").exists()
    # done: nothing to rerun
    assert "Nothing to be done" in run_snakemake("-n", "reports/table3.csv", "--configfile", config, cwd=workdir,
                                                 env=env)


def test_the_dags_runs_reader_resolves_every_run_as_load_config_does(tmp_path):
    """workflow/scripts/clothing1m_runs.py reads the runs file again, torch-free, for the DAG: its precedence
    (override > run > shared > Clothing1MConfig's defaults) and its copy of the defaults must agree with
    load_config, which the jobs use, or a job would train another method than its rule names."""
    import dataclasses

    from pyrobust.experiment.clothing1m.config import Clothing1MConfig, load_config

    spec = importlib.util.spec_from_file_location("clothing1m_runs", ROOT / "workflow/scripts/clothing1m_runs.py")
    runs_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runs_module)
    defaults = {f.name: f.default for f in dataclasses.fields(Clothing1MConfig)}
    assert runs_module.DEFAULTS == {key: defaults[key] for key in runs_module.DEFAULTS}

    shared = {"estimator": "dual_t", "train_set": "clean"}  # a shared key that a run overrides, one it keeps
    runs = {"plain": {}, "own": {"method": "forward", "train_set": "noisy", "estimator": "argmax", "row": 6,
                                 "save_probs": True},
            "tuned": {"method": "backward", "init_from": "own"}}
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump({**shared, "runs": runs}, sort_keys=False))
    for overrides in (None, {"estimator": "vertex"}):
        read = runs_module.read_runs(path, overrides=overrides)
        assert list(read) == list(runs)
        for name, run in read.items():
            config, options = load_config(path, name, overrides)
            assert (run["method"], run["train_set"], run["estimator"], run["row"]) == (
                config.method, config.train_set, config.estimator, config.row)
            assert (run["save_probs"], run["init_from"]) == (options["save_probs"], options["init_from"])
