"""Table 2 (CSV and Markdown) and the figures, from exactly the result records of the configured runs.

The report reads its input, the records this configuration asks for, and nothing else under the results
folder (records of other methods, seeds or settings may be there), and it is told the settings of each
(`trained_settings`): a record of other settings, e.g. left from a run with other epochs, stops it with
the record's name instead of being averaged into a cell. Every path it writes is one of its outputs.
"""

import json
from pathlib import Path

# The result record of every configured method and run of each data set of the table, with the settings
# it must have been trained with.
RESULT_RUNS = {
    dataset: [
        (
            f"{RUN}/{{method}}.json".format(
                dataset=dataset,
                model=model,
                noise=setting["noise"],
                N=format_N(setting["N"]),
                seed=seed,
                method=method,
            ),
            trained_settings(
                dataset, model, setting["noise"], setting["N"], seed, method
            ),
        )
        for model in config["dataset_settings"][dataset]["models"]
        for setting in config["dataset_settings"][dataset]["settings"]
        for seed in seeds(dataset)
        for method in METHODS
    ]
    for dataset in DATASETS
}
# Whether a data set is in the table: always, unless its availability probe said otherwise.
available = lambda dataset: dataset not in PROBED_DATASETS or (
    json.loads(
        Path(checkpoints.probe_dataset.get(dataset=dataset).output[0]).read_text()
    )["available"]
)
missing_datasets = lambda: [d for d in DATASETS if not available(d)]
# The runs of the table, in one order for the records (input) and their settings (params).
table_runs = lambda: [run for d in DATASETS if available(d) for run in RESULT_RUNS[d]]


localrules:
    report,


rule report:
    input:
        results=lambda wildcards: [path for path, _ in table_runs()],
        paper=workflow.source_path("../resources/table2-paper.csv"),
    output:
        csv=report(
            f"{REPORTS}/table2.csv",
            caption="../report/table2_csv.rst",
            category="Table 2",
        ),
        md=report(
            f"{REPORTS}/table2.md",
            caption="../report/table2_md.rst",
            category="Table 2",
        ),
        estimators=report(
            f"{REPORTS}/estimators.csv",
            caption="../report/estimators_csv.rst",
            category="Estimators of T",
        ),
        figures=report(
            directory(f"{REPORTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/report.log",
    conda:
        "../envs/pyrobust.yaml"
    params:
        expected=lambda wildcards: [settings for _, settings in table_runs()],
        missing=lambda wildcards: missing_datasets(),
        code=REPORT_CODE,
        env_check=ENV_CHECK_DIGEST,
    script:
        "../scripts/report.py"
