#!/usr/bin/env bash
# Runs inside the freshly created environment: install this checkout's package (editable, so the
# environment always runs the checked-out code). The Snakefile exports NOBARRIERS_SOURCE.
set -euo pipefail
python -m pip install --no-deps --editable "${NOBARRIERS_SOURCE:?run through the workflow's Snakefile}"
