#!/usr/bin/env bash
# Start (or attach to) the single-node test SLURM of tests/slurm/cluster.py: munged, MariaDB,
# slurmdbd, slurmctld, slurmd, all state in ${NOBARRIERS_SLURM_DIR:-/tmp/nobarriers-slurm}.
# Installs the Debian packages first when missing (root + apt-get). Idempotent.
#   .ci/slurm-up.sh && snakemake --profile profiles/slurm ...   (sinfo/squeue/sacct work directly)
#   .ci/slurm-down.sh                                  (stops the daemons by their PIDs)
# Prints `export SLURM_CONF=...` (eval it if /etc/slurm/slurm.conf is not the link it makes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 "$here/tests/slurm/cluster.py" up "$@"
