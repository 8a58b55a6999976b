#!/usr/bin/env bash
# The README's test command: installs what the tests need, runs the lint and type gate (ops/lint.sh:
# ruff and mypy; a finding stops here, before any test runs), then runs the whole suite.
# Extra arguments go to pytest (e.g. `bash ops/test.sh -k chain`, `bash ops/test.sh --soak`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install.sh --test
bash ops/lint.sh
exec .venv/bin/python -m pytest "$@"
