"""The runs of a Clothing1M runs file (config/clothing1m.yaml), as the workflow needs them to build its DAG.

Read here with plain YAML, torch-free (pyrobust.experiment.clothing1m.load_config imports torch), with the
precedence of load_config: the workflow's `clothing1m.set` > the run's keys > the file's top-level keys >
the defaults of Clothing1MConfig that matter here. The jobs themselves read the file again with
load_config, which checks every setting.
"""

from pathlib import Path

import yaml

#: Clothing1MConfig's defaults of the settings the DAG depends on.
DEFAULTS = {"method": "cross_entropy", "train_set": "noisy", "estimator": "percentile", "row": None}
#: Keys of a run in the file that are not Clothing1MConfig fields (load_config's _RUN_KEYS).
RUN_KEYS = ("save_probs", "init_from")


def read_runs(path, selected=None, overrides=None, estimated=()):
    """The runs of the file at `path`, in its order (only `selected`, in that order, when given).

    Each run: `settings` (its resolved settings, the file's and `overrides`, what its job is rerun on),
    `method`, `train_set`, `estimator`, `row` (its Table 3 row or None), `save_probs` (bool), `init_from`
    (a run or None), `T_hat` (whether its method is one of `estimated`, i.e. trained with T-hat).

    Raises:
        ValueError: no such file, not a mapping with `runs`, an unknown run (selected, or named by
            `init_from`), a run trained with T-hat without a run that saves its softmax.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such runs file (clothing1m.runs_file)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), dict) or not raw["runs"]:
        raise ValueError(f"{path}: expected a mapping of settings with `runs:`, a mapping of named runs")
    shared = {k: v for k, v in raw.items() if k not in ("runs", "out_dir")}
    names = list(raw["runs"]) if selected is None else list(selected)
    unknown = [name for name in names if name not in raw["runs"]]
    if unknown:
        raise ValueError(f"{path}: no run(s) {unknown} (clothing1m.runs); its runs: {', '.join(raw['runs'])}")
    runs = {}
    for name in names:
        entry = dict(raw["runs"][name] or {})
        options = {key: entry.pop(key, None) for key in RUN_KEYS}
        settings = {**shared, **entry, **(overrides or {})}
        resolved = {**DEFAULTS, **settings}
        if options["init_from"] is not None and options["init_from"] not in raw["runs"]:
            raise ValueError(f"{path}: run {name!r} starts from run {options['init_from']!r}, which it has not")
        runs[name] = {
            "settings": settings,
            "method": resolved["method"],
            "train_set": resolved["train_set"],
            "estimator": resolved["estimator"],
            "row": resolved["row"],
            "save_probs": bool(options["save_probs"]),
            "init_from": options["init_from"],
            "T_hat": resolved["method"] in estimated,
        }
    # what the runs need is run too: the run whose weights one starts from, and the run whose softmax T-hat
    # is estimated from
    needed = [runs[name]["init_from"] for name in runs if runs[name]["init_from"] not in (None, *runs)]
    if any(run["T_hat"] for run in runs.values()) and probs_source(runs) is None:
        source = next((n for n, entry in raw["runs"].items() if (entry or {}).get("save_probs")), None)
        if source is None:
            with_T_hat = ", ".join(name for name, run in runs.items() if run["T_hat"])
            raise ValueError(f"{path}: the runs trained with T-hat ({with_T_hat}) need a run with `save_probs: "
                             "true` (the cross-entropy network on the noisy 1M, ce_1m), whose softmax it is "
                             "estimated from")
        needed.append(source)
    for name in dict.fromkeys(needed):
        runs.update(read_runs(path, [name], overrides, estimated))
    return runs


def probs_source(runs):
    """The run whose softmax T-hat is estimated from: the first that saves it (config/clothing1m.yaml: ce_1m),
    or None."""
    return next((name for name, run in runs.items() if run["save_probs"]), None)
