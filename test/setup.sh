#!/usr/bin/env bash
# The test suite's own set-up, run by `npm test` before any test (and by .ci/run through it):
# installs what a fresh Debian/Ubuntu machine lacks for the suite — redis-server, docker-compose
# (the compose file's check), Chromium (the page tests) — and the locked npm dependencies when
# node_modules is missing. Only what is missing is installed; a machine that has everything
# spends well under a second here. Where something is missing and cannot be installed (no
# root, no sudo, no apt-get), it stops with one line per tool naming how to get it: no test is
# ever skipped for a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x "$CHROMIUM" ] || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test set-up: these tools are missing and cannot be installed here (needs apt-get as root or password-less sudo):" >&2
    for m in "${missing[@]}"; do
      case "$m" in
        redis-server) echo "  redis-server: install the Debian package redis-server (any Redis ≥ 6.2 on PATH)" >&2 ;;
        docker-compose) echo "  docker-compose: install the Debian package docker-compose (only 'docker-compose config' is run)" >&2 ;;
        chromium) echo "  chromium: install the Debian package chromium, or set CHROMIUM_PATH to a Chromium binary" >&2 ;;
      esac
    done
    exit 2
  fi
  echo "test set-up: installing ${missing[*]}"
  # apt-get's lists may be absent on a fresh machine: update once, then install.
  $SUDO apt-get update -y -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# (test/unit/test-setup.test.ts checks the part above with stub commands and stops here.)
[ "${FLUXQ_SETUP_ONLY_TOOLS:-}" = 1 ] && exit 0

if [ ! -d node_modules ] || [ ! -e node_modules/.package-lock.json ]; then
  echo "test set-up: node_modules missing: npm ci"
  npm ci --no-audit --no-fund
fi

# The other Node majors the README claims (22, 24), for the field tests that must hold on
# each of them (test/node-versions.sh, run at the end of a full `npm test`).
sh test/node-versions.sh --fetch-only

# Python's `openai` package, for the README's Python snippet (test/integration/openai-readme.test.ts):
# a private venv, so the system Python is left alone. pip reads its index from the machine's
# own configuration. Where Python or pip is missing, say so and stop: no test is skipped for it.
PY_VENV="${FLUXQ_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxq-py-openai}"
if ! "$PY_VENV/bin/python" -c 'import openai' >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "test set-up: python3 is missing (the README's Python snippet is tested): install the Debian package python3-venv" >&2
    exit 2
  fi
  echo "test set-up: a Python venv with the openai package at $PY_VENV"
  python3 -m venv "$PY_VENV" || { echo "test set-up: python3 -m venv failed: install the Debian package python3-venv" >&2; exit 2; }
  "$PY_VENV/bin/pip" install -q --retries 0 --timeout 10 openai || { echo "test set-up: pip install openai failed (no package index reachable?)" >&2; exit 2; }
fi
