#!/usr/bin/env bash
# Installs reconciler into .venv, then runs the main job on the embedded demo workspace in manifests/:
# `reconciler plan`, then `reconciler apply` (which shows the plan again and asks for "yes";
# pass --auto-approve to skip the question), then `reconciler plan` once more, which shows no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"
set -x
reconciler validate
reconciler plan
reconciler apply "$@"
reconciler plan --detailed-exitcode
