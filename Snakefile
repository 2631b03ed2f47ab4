# Table 2 of Patrini et al., CVPR 2017: `snakemake --cores all` (settings: config/config.yaml, every key
# explained in config/README.md).
#
# Its default profile, profiles/default (resume after an interruption, rerun on changed settings or code),
# lies beside it, where Snakemake looks for one from any working directory.


include: "workflow/rules/common.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/cifar_n.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/clothing1m.smk"


# Here, not in an included file: Snakemake resets a default target declared in an included file.
rule all:
    default_target: True
    input:
        f"{REPORTS}/table2.csv",
        f"{REPORTS}/table2.md",
        TABLE3,  # with a `clothing1m:` section: Table 3 too (workflow/rules/clothing1m.smk)
    localrule: True
