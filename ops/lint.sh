#!/usr/bin/env bash
# Lint and type checks: run by ops/test.sh before the tests, or alone (`bash ops/lint.sh`).
# ruff checks the rules chosen in pyproject.toml's [tool.ruff]; mypy checks shared, town_center, hub
# and village_agent as [tool.mypy] says, holding shared/domain to what --strict turns on.
# Both keep caches in the tree (.ruff_cache, .mypy_cache), so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
"$bin/ruff" check .
"$bin/mypy"
