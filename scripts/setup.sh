#!/usr/bin/env bash
# Creates the project-local virtual environment .venv from requirements.lock alone: every
# distribution, transitive ones included, at the exact version and hash the lock names, so a
# fresh machine gets the same tree as CI. `make lock` re-resolves the lock (scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.mmrag-installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # The lock carries pip-tools; a new venv installs it (and the locked pip) with the venv's own
  # pip first, then pip-sync makes the venv equal to the lock, removing whatever is not in it.
  if [ ! -x .venv/bin/pip-sync ]; then
    .venv/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
  fi
  .venv/bin/pip-sync --quiet requirements.lock
  # mmrag itself, editable, built by the locked setuptools: nothing resolved or fetched here.
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
