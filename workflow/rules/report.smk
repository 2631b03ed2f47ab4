"""Table 2 (CSV and Markdown) and the figures, from every result record of the configured runs."""


localrules:
    report,


rule report:
    input:
        results=report_results,
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
        missing=missing_datasets,
        code=REPORT_CODE,
    shell:
        "pyrobust report --results {params.results} --out-dir {params.out_dir} "
        "--paper {input.paper} "
        "{params.missing} > {log} 2>&1"
