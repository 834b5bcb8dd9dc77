#!/bin/bash
# Slurm job array: audit a fleet of firmware dumps in 16 shards, one array task per shard.
#   sbatch docs/slurm/audit-array.sh
# then, when the array is done (or chain it with --dependency=afterany:JOBID):
#   fwscan merge results/audit-*.jsonl          # same summary and exit code as one unsharded run
# Exit codes: 0 clean, 1 findings, 2 undecided (Slurm shows 1 as FAILED; read the merged summary).
#SBATCH --job-name=fwscan-audit
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --mem=1G
#SBATCH --time=02:00:00
#SBATCH --output=logs/fwscan-%A_%a.log

set -u
N=16   # must equal the size of --array
mkdir -p results
exec fwscan audit /srv/firmware-dumps \
    --manifests /srv/fwscan/manifests \
    --trust /srv/fwscan/trust.json \
    --shard "${SLURM_ARRAY_TASK_ID}/${N}" \
    --jobs "${SLURM_CPUS_PER_TASK:-1}" \
    --quiet \
    -o "results/audit-${SLURM_ARRAY_TASK_ID}.jsonl" \
    --format json > "results/summary-${SLURM_ARRAY_TASK_ID}.json"
