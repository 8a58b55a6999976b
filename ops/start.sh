#!/usr/bin/env bash
# The README's start command: installs, then starts what the system has so far on local files.
# Data lives in var/demo/ and is reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install.sh
exec .venv/bin/python -m ops.demo "$@"
