#!/usr/bin/env bash
# Submit command of the cluster-generic executor that runs the job here: Snakemake passes the job script as
# the last argument; run it detached and print a job id (the process id). Snakemake notices the end of
# the job from the marker files the job script writes.
set -euo pipefail
jobscript="${!#}"
nohup bash "$jobscript" > "$jobscript.out" 2>&1 &
echo $!
