#!/bin/bash
# Slurm job array: audit a fleet of firmware dumps in shards, one array task per shard.
#   sbatch docs/slurm/audit-array.sh
#   sbatch --array=0-3 docs/slurm/audit-array.sh                 # 4 shards instead of 16
#   FWSCAN_DUMPS=/data/dumps FWSCAN_MANIFESTS=/data/m FWSCAN_TRUST=/data/trust.json sbatch docs/slurm/audit-array.sh
# then, when the array is done (or chain it with --dependency=afterany:JOBID):
#   fwscan merge results/audit-*.jsonl          # same summary and exit code as one unsharded run
# A task that was killed (scancel, time limit, node failure) leaves a results file without its end row:
# `merge` then reports that the run did not finish and exits 2.
# Exit codes: 0 clean, 1 findings, 2 undecided (Slurm shows 1 as FAILED; read the merged summary).
#
# Parameters (environment, exported by sbatch; defaults in brackets):
#   FWSCAN            the fwscan binary [fwscan]
#   FWSCAN_DUMPS      the directory of dumps [/srv/firmware-dumps]
#   FWSCAN_MANIFESTS  the manifest catalogue [/srv/fwscan/manifests]
#   FWSCAN_TRUST      the trust policy [/srv/fwscan/trust.json]
#   FWSCAN_RESULTS    where results and summaries go [results]
#   FWSCAN_SHARDS     number of shards [the array size Slurm reports, SLURM_ARRAY_TASK_COUNT]
# The array must be 0..N-1 (`--array=0-15` below, or given to sbatch).
#SBATCH --job-name=fwscan-audit
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --mem=1G
#SBATCH --time=02:00:00
#SBATCH --output=logs/fwscan-%A_%a.log

set -u
FWSCAN=${FWSCAN:-fwscan}
RESULTS=${FWSCAN_RESULTS:-results}
N=${FWSCAN_SHARDS:-${SLURM_ARRAY_TASK_COUNT:-16}}
mkdir -p "$RESULTS"
exec "$FWSCAN" audit "${FWSCAN_DUMPS:-/srv/firmware-dumps}" \
    --manifests "${FWSCAN_MANIFESTS:-/srv/fwscan/manifests}" \
    --trust "${FWSCAN_TRUST:-/srv/fwscan/trust.json}" \
    --shard "${SLURM_ARRAY_TASK_ID}/${N}" \
    --jobs "${SLURM_CPUS_PER_TASK:-1}" \
    --quiet \
    -o "${RESULTS}/audit-${SLURM_ARRAY_TASK_ID}.jsonl" \
    --format json > "${RESULTS}/summary-${SLURM_ARRAY_TASK_ID}.json"
