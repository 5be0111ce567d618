#!/usr/bin/env bash
# What the tests need beyond the venv, from Debian: Redis (the distributed-mode tests start
# their own) and chromium (the web page tests drive it through PyPI's playwright, never
# `playwright install`). The service itself needs neither, so `make run` never installs them.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null; then
  echo "test-deps: install ${missing[*]} for the tests" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "test-deps: as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
# A fresh machine's daily apt jobs can hold the dpkg lock for a while: wait for it.
apt=(apt-get -o DPkg::Lock::Timeout=300 -qq)
"${sudo[@]}" "${apt[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y "${missing[@]}" >/dev/null
