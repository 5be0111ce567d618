#!/usr/bin/env bash
# Re-resolves requirements.lock: the newest versions that pyproject.toml's ranges allow today,
# every transitive distribution pinned with its hashes. Indexes come from pip's own
# configuration, so the lock names no machine's mirror. Run `make test` on what it resolves.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/pip-compile --quiet --upgrade --all-extras --generate-hashes --allow-unsafe \
  --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock pyproject.toml
./scripts/setup.sh
