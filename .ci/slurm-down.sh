#!/usr/bin/env bash
# Stop the test SLURM started by .ci/slurm-up.sh (or left by a crashed test): cancels queued
# jobs, then stops the recorded daemon PIDs in reverse start order. Safe to run twice.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 "$here/tests/slurm/cluster.py" down "$@"
