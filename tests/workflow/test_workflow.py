"""The Snakemake workflow: DAG sizes of the default and paper configs, the configuration completed from
pyrobust's catalogue (plug-ins included) and its documentation, lint/format, an end-to-end run, the resume
and rerun rules, and the cluster code path (cluster-generic executor running jobs locally)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, SNAKEMAKE, TINY, job_counts, run_snakemake, snakemake_env

from pyrobust import catalog, registry

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
ESTIMATED = set(catalog.estimated_T_methods())


def dataset_defaults(dataset):
    """A data set's models, seeds and number of noise settings, straight from pyrobust's catalogue."""
    info = registry.get_dataset(dataset)
    return list(info.networks), info.seeds, len(info.columns)


def expected_jobs(datasets, methods, *, batched, fetch):
    """Job counts computed from the configuration alone: one run per data set x model x setting x seed."""
    counts = {}
    for dataset in datasets:
        models, seeds, settings = dataset_defaults(dataset)
        labels = settings  # one job per setting writes every seed's labels, shared by the networks
        runs = settings * seeds * len(models)
        with_T_hat = [m for m in methods if m in ESTIMATED]
        without = [m for m in methods if m not in ESTIMATED and m != "cross_entropy"]
        ce = "cross_entropy" in methods or bool(with_T_hat)
        add = {
            "fetch_dataset": int(fetch),
            "corrupt_labels": labels,
            "train_cross_entropy": 0 if batched else runs * ce,
            "train_without_T_hat": runs * (1 if batched else len(without)) if (without or (batched and ce)) else 0,
            "estimate_transition_matrix": runs * bool(with_T_hat),
            "train_with_T_hat": runs * (1 if batched else len(with_T_hat)) if with_T_hat else 0,
        }
        for rule, n in add.items():
            counts[rule] = counts.get(rule, 0) + n
    counts.update(report=1, all=1)
    return {rule: n for rule, n in counts.items() if n}


# ----------------------------------------------------------------------------------------------- the DAG


def test_default_dag_is_the_mnist5k_table(workdir):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert config["default_datasets"] == ["mnist5k"] and len(config["methods"]) == 12
    methods = catalog.with_estimators(config["methods"], config["estimators"])
    expected = expected_jobs(["mnist5k"], methods, batched=True, fetch=False)
    assert expected["corrupt_labels"] == 4
    assert job_counts(cwd=workdir) == expected


def test_paper_dag_is_every_network_of_table_2(workdir):
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert config["datasets"] == ["mnist", "imdb", "cifar10", "cifar100"]
    methods = catalog.with_estimators(config["methods"], config["estimators"])
    expected = expected_jobs(config["datasets"], methods, batched=False, fetch=True)
    # 5 runs of MNIST (fc) and IMDB (embedding, lstm), 1 of CIFAR-10 (resnet14, resnet32) and CIFAR-100
    assert expected["estimate_transition_matrix"] == 4 * (5 * 1 + 5 * 2 + 1 * 2 + 1 * 1)
    assert job_counts("--configfile", "config/paper.yaml", cwd=workdir) == expected


def test_config_overrides_reach_the_dag(workdir):
    counts = job_counts("--config", "seeds=3", "methods=[savage,forward]", "epochs=2", cwd=workdir)
    assert counts == {"corrupt_labels": 4, "train_without_T_hat": 4 * 3, "report": 1, "all": 1}


def test_tiny_dag_runs_every_rule(workdir):
    assert job_counts(*TINY, cwd=workdir) == {
        "corrupt_labels": 1, "train_without_T_hat": 2, "estimate_transition_matrix": 2, "train_with_T_hat": 2,
        "report": 1, "all": 1,
    }  # fmt: skip


def test_lint_and_format_are_clean():
    assert "Congratulations, your workflow is in a good condition" in run_snakemake("--lint")
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    result = subprocess.run([snakefmt, "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------- the configuration


def catalogue_names():
    """Every name the catalogue defines: data sets, methods, estimators, networks, noise kinds."""
    return {
        *registry.list_datasets(), *registry.list_methods(), *registry.list_estimators(),
        *catalog.NETWORKS, *catalog.NOISE_KINDS,
    }  # fmt: skip


def test_the_schema_names_nothing_that_the_catalogue_names():
    """Enums and defaults of data sets, methods, ... are filled from the catalogue, not written in the schema."""

    def strings(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, (dict, list)):
            for item in node.values() if isinstance(node, dict) else node:
                yield from strings(item)

    def named(node):
        """The catalogue's names among the enums and defaults under `node`."""
        if isinstance(node, list):
            return [name for item in node for name in named(item)]
        if not isinstance(node, dict):
            return []
        return [
            name
            for key, value in node.items()
            for name in (
                [s for s in strings(value) if s in catalogue_names()] if key in ("enum", "default") else named(value)
            )
        ]

    assert named(SCHEMA) == []
    assert "properties" not in SCHEMA["properties"]["dataset_settings"]  # no per-data-set defaults either
    # the paper's, each estimator's, and T-Revision (which starts from the paper's T-hat), as expected_jobs assumes
    assert ESTIMATED == {"backward_est", "forward_est", "t_revision"} | {
        m.name for m in catalog.methods() if m.estimator is not None
    }


def write_plugin(root):
    """An installed plug-in (a dist-info with entry points): a data set, a baseline, an estimated-T method
    and an estimator of T, none of them known to pyrobust itself."""
    (root / "toyplugin.py").write_text(
        "from pyrobust.registry import DatasetInfo, Estimator, Method\n"
        "TOY = DatasetInfo('toy', 'toyplugin:load', num_classes=3, networks=('fc',), seeds=2, runtime=7,\n"
        "                  columns=(('symmetric', 0.3),), estimator='toy_estimator')\n"
        "TOY_LOSS = Method('toy_loss', 'toyplugin:Loss')\n"
        "TOY_FORWARD = Method('toy_forward', 'toyplugin:Loss', transition='estimated')\n"
        "TOY_ESTIMATOR = Estimator('toy_estimator', 'toyplugin:estimate')\n"
    )
    info = root / "toyplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pyrobust.datasets]\ntoy = toyplugin:TOY\n"
        "[pyrobust.methods]\ntoy_loss = toyplugin:TOY_LOSS\ntoy_forward = toyplugin:TOY_FORWARD\n"
        "[pyrobust.estimators]\ntoy_estimator = toyplugin:TOY_ESTIMATOR\n"
    )


def test_a_plugin_data_set_method_and_estimator_need_no_change_to_the_workflow(workdir, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write_plugin(plugins)
    env = dict(os.environ, PYTHONPATH=str(plugins) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    config = ["datasets=[toy]", "methods=[toy_loss,toy_forward]", "dataset_settings={toy: {seeds: 3}}"]
    # the catalogue's defaults of `toy` (one network, one noise setting) and the override (3 seeds)
    assert job_counts("--config", *config, cwd=workdir, env=env) == {
        "corrupt_labels": 1, "train_without_T_hat": 3, "estimate_transition_matrix": 3, "train_with_T_hat": 3,
        "report": 1, "all": 1,
    }  # fmt: skip
    output = run_snakemake("-n", "-p", "--config", *config, cwd=workdir, env=env)
    assert "--method cross_entropy --method toy_loss --save-probs" in output  # cross_entropy: T-hat's source
    assert "--method toy_forward --T-hat results/toy/fc/symmetric-0.3/seed2/T_hat.npy" in output
    assert "--estimator toy_estimator --quantile 0.97" in output


def test_unknown_names_are_rejected_naming_the_key_and_the_known_names(workdir):
    for override, key, known in [
        ("methods=[cross_entropy,forwards]", "methods[1]: 'forwards'", registry.list_methods()),
        ("datasets=[mnist6k]", "datasets[0]: 'mnist6k'", registry.list_datasets()),
        ("dataset_settings={mnist6k: {seeds: 1}}", "dataset_settings: 'mnist6k'", registry.list_datasets()),
        ("dataset_settings={mnist5k: {estimator: mode}}", "dataset_settings.mnist5k.estimator: 'mode'",
         registry.list_estimators()),
        ("dataset_settings={mnist5k: {models: [vgg]}}", "dataset_settings.mnist5k.models[0]: 'vgg'",
         list(catalog.NETWORKS)),
    ]:  # fmt: skip
        result = subprocess.run([*SNAKEMAKE, "-n", "--config", override], cwd=workdir, capture_output=True, text=True)
        output = result.stdout + result.stderr
        assert result.returncode != 0, override
        assert f"Invalid configuration: {key} is not one of {known}" in output, output[-2000:]


def readme_tables():
    """config/README.md's tables, by section title: a list of rows, each a list of cells."""
    tables = {}
    for section in ("\n" + (ROOT / "config/README.md").read_text()).split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        rows = [line.strip("|").split("|") for line in body.splitlines() if line.startswith("|")]
        tables[title.strip()] = [[cell.strip() for cell in row] for row in rows[2:]]  # header, ---
    return tables


def test_every_key_of_the_schema_is_documented_in_the_config_readme():
    tables = readme_tables()
    documented = [row[0].strip("`") for row in tables["Keys"]]
    assert documented == list(SCHEMA["properties"])
    per_dataset = [row[0].strip("`") for row in tables["Keys of `dataset_settings.<data set>`"]]
    assert per_dataset == list(SCHEMA["$defs"]["dataset"]["properties"])


def test_the_config_readme_states_the_catalogues_defaults():
    def row(d):
        columns = ", ".join(f"{kind} {N:g}" for kind, N in d.columns)
        return [d.name, ", ".join(d.networks), columns, str(d.seeds), d.estimator, str(d.runtime)]

    rows = readme_tables()["The built-in data sets' defaults"]
    built_in = [d for d in catalog.datasets() if isinstance(d.loader, str) and d.loader.startswith("pyrobust.")]
    assert rows == [row(d) for d in built_in]


# ----------------------------------------------------------------------------------------------- running


@pytest.mark.slow
def test_tiny_config_end_to_end_then_resume_and_rerun(workdir, tmp_path):
    """An end-to-end run; resuming, changed settings and changed code rerun what they reach; the report
    reads exactly the configured runs and refuses a stale record (one of other settings), naming it."""
    from pyrobust.experiment.table import CSV_COLUMNS

    env = snakemake_env(tmp_path)
    config = [*TINY, "--config", "default_datasets=[mnist5k,cifar10]"]  # cifar10 is not there: missing
    run_snakemake("--cores", "2", *config, cwd=workdir, env=env)

    table = pd.read_csv(workdir / "reports/table2.csv")
    assert list(table.columns) == CSV_COLUMNS
    # forward_est is trained again with the T-hat of each default estimator (config `estimators`)
    assert sorted(table.method) == ["cross_entropy", "forward_dual_t", "forward_est", "forward_vertex", "savage"]
    assert set(zip(table.dataset, table.model, table.noise, table.N)) == {("mnist5k", "fc", "asymmetric", 0.6)}
    assert list(table.runs) == [2] * 5 and list(table.epochs) == [1] * 5
    estimators = pd.read_csv(workdir / "reports/estimators.csv")
    assert list(estimators.estimator) == ["percentile", "vertex", "dual_t"] and list(estimators.runs) == [2] * 3
    assert estimators.forward_accuracy.between(0, 100).all() and estimators.mae.between(0, 1).all()
    ours = table.method.isin(["forward_dual_t", "forward_vertex"])  # rows the paper does not have
    assert set(table.paper_reference[~ours]) == {"mnist/fc"} and table.paper_mean[ours].isna().all()
    assert table["mean"].between(0, 100).all()
    markdown = (workdir / "reports/table2.md").read_text()
    assert "## Missing data sets" in markdown and "(`cifar10`)" in markdown.split("## Missing data sets")[1]
    assert json.loads((workdir / "results/data/cifar10.json").read_text())["available"] is False
    assert {p.name for p in (workdir / "reports/figures").iterdir()} >= {
        "accuracy_vs_N.png", "paper_vs_ours.png", "T_hat_by_estimator_mnist5k_fc.png",
    }  # fmt: skip
    record = json.loads((workdir / "results/mnist5k/fc/asymmetric-0.6/seed1/forward_est.json").read_text())
    assert record["seed"] == 1 and record["T_hat"] is not None

    # resuming finds everything done; a changed setting reruns exactly the jobs that depend on it
    assert "Nothing to be done" in run_snakemake("-n", *config, cwd=workdir, env=env)
    assert job_counts(*config, "epochs=2", cwd=workdir, env=env) == {
        "train_without_T_hat": 2, "train_with_T_hat": 2, "estimate_transition_matrix": 2, "report": 1, "all": 1,
    }  # fmt: skip

    # a change to the reporting code reruns the report only; any other change to pyrobust reruns training
    package = tmp_path / "package" / "pyrobust"
    for name in ("experiment/records.py", "experiment/table.py", "experiment/markdown.py",
                 "experiment/figures.py", "experiment/report.py", "plots.py"):  # fmt: skip
        if (package / name).exists():
            with open(package / name, "a") as file:
                file.write("\n# changed\n")
    assert job_counts(*config, cwd=workdir, env=env) == {"report": 1, "all": 1}
    training = {
        "corrupt_labels": 1, "train_without_T_hat": 2, "train_with_T_hat": 2, "estimate_transition_matrix": 2,
        "report": 1, "all": 1,
    }  # fmt: skip
    # ... and so does a change to a kernel (kernels/, compiled into pyrobust._C; was: not hashed)
    kernel = package.parent / "kernels" / "cpu" / "corrected_ce.cpp"
    source = kernel.read_bytes()
    kernel.write_bytes(source + b"\n// changed\n")
    assert job_counts(*config, cwd=workdir, env=env) == training
    kernel.write_bytes(source)
    assert job_counts(*config, cwd=workdir, env=env) == {"report": 1, "all": 1}
    with open(package / "losses" / "corrected.py", "a") as file:
        file.write("\n# changed\n")
    assert job_counts(*config, cwd=workdir, env=env) == training

    # the report reads exactly the configured runs: other methods, seeds and settings under results/ are not
    # this configuration's table (was: every record under results/ went in)
    fewer = [*config, "methods=[cross_entropy,savage]", "seeds=[0]"]
    run_snakemake("--cores", "2", *fewer, cwd=workdir, env=env)
    table = pd.read_csv(workdir / "reports/table2.csv")
    assert list(table.method) == ["cross_entropy", "savage"] and list(table.runs) == [1, 1]
    assert (workdir / "results/mnist5k/fc/asymmetric-0.6/seed1/forward_est.json").exists()  # there, not read

    # a record of the run asked for but of other settings (as if left by a 40-epoch run), which Snakemake
    # does not see as changed (same file times): the report stops, naming it
    record = workdir / "results/mnist5k/fc/asymmetric-0.6/seed0/savage.json"
    times = record.stat()
    record.write_text(record.read_text().replace('"epochs": 1,', '"epochs": 40,', 1))
    os.utime(record, ns=(times.st_atime_ns, times.st_mtime_ns))
    result = run_snakemake("--cores", "2", *fewer, "--forcerun", "report", cwd=workdir, env=env, check=False)
    assert result.returncode != 0
    log = (workdir / "logs/report.log").read_text()
    assert "seed0/savage.json: trained with other settings than those asked for (epochs: recorded 40, " \
           "asked for 1)" in log, log[-2000:]  # fmt: skip
    table = workdir / "reports/table2.csv"
    assert not table.exists() or list(pd.read_csv(table).epochs) == [1, 1]


@pytest.mark.slow
def test_cluster_generic_profile_runs_jobs_through_the_submit_command(workdir, tmp_path):
    env = snakemake_env(tmp_path)
    target = "results/mnist5k/labels/asymmetric-0.6"
    profile = "workflow/profiles/cluster-generic-local"
    output = run_snakemake(target, "--workflow-profile", profile, *TINY, cwd=workdir, env=env)
    assert sorted(p.name for p in (workdir / target).glob("*.npz")) == ["seed0.npz", "seed1.npz"]
    assert re.search(r"Submitted job \d+ with external jobid '\d+'", output), output[-2000:]


@pytest.mark.slow
def test_a_loss_from_an_installed_plugin_package_becomes_a_row_of_table_2(workdir, tmp_path):
    """tests/plugin, a package of its own, adds the loss `mae` by entry point: the workflow trains it and
    the report shows it as a row, without a line of pyrobust or of the workflow edited."""
    site, source = tmp_path / "site", tmp_path / "plugin"
    shutil.copytree(ROOT / "tests" / "plugin", source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True,
    )  # fmt: skip
    env = snakemake_env(tmp_path)
    env["PYTHONPATH"] = f"{site}{os.pathsep}{env['PYTHONPATH']}"
    run_snakemake("--cores", "2", *TINY, "--config", "methods=[cross_entropy,mae]", cwd=workdir, env=env)

    table = pd.read_csv(workdir / "reports/table2.csv")
    assert list(table.method) == ["cross_entropy", "mae"] and list(table.runs) == [2, 2]
    assert table["mean"].between(0, 100).all()
    record = json.loads((workdir / "results/mnist5k/fc/asymmetric-0.6/seed0/mae.json").read_text())
    assert record["method"] == "mae" and record["epochs"] == 1
    rows = [line for line in (workdir / "reports/table2.md").read_text().splitlines() if line.startswith("| MAE |")]
    assert len(rows) == 1
