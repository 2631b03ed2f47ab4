# Table 2 of Patrini et al., CVPR 2017: `snakemake --cores all` (settings: config/config.yaml).


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


# The default target lives here: Snakemake ignores a default target declared in an included file.
rule all:
    input:
        f"{REPORTS}/table2.csv",
        f"{REPORTS}/table2.md",
