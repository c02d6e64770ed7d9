#!/usr/bin/env bash
# Install profiles/slurm as your Snakemake profile `slurm` (~/.config/snakemake/slurm), so that
# `snakemake --profile slurm` works. An edited copy is kept unless you pass --force.
# Same as: python tools/install_slurm_profile.py [--force] [--dest DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then py="$here/.venv/bin/python"; else py=python3; fi
fi
exec "$py" "$here/tools/install_slurm_profile.py" "$@"
