"""Table 2 (CSV and Markdown) and the figures, from every result record of the configured runs."""

import json
import os
from pathlib import Path

# The result record of every configured method and run of each data set of the table.
RESULT_FILES = {
    dataset: [
        f"{RUN}/{{method}}.json".format(
            dataset=dataset,
            model=model,
            noise=setting["noise"],
            N=format_N(setting["N"]),
            seed=seed,
            method=method,
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


localrules:
    report,


rule report:
    input:
        results=lambda wildcards: [
            f for d in DATASETS if available(d) for f in RESULT_FILES[d]
        ],
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
        results=RESULTS,
        out_dir=lambda wildcards, output: os.path.dirname(output.csv),
        missing=lambda wildcards: (
            f"--missing {' '.join(missing)}" if (missing := missing_datasets()) else ""
        ),
        code=REPORT_CODE,
    shell:
        "pyrobust report --results {params.results} --out-dir {params.out_dir} "
        "--paper {input.paper} "
        "{params.missing} > {log} 2>&1"
