#!/usr/bin/env bash
# Creates the project's virtualenv and installs the project with its dev extras into it.
# Called by the Makefile whenever pyproject.toml is newer than the venv's stamp.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "bootstrap: '$python' not found; install Python 3.11 or newer (Debian: apt-get install -y python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "bootstrap: $("$python" --version 2>&1) is too old; tango-operator needs Python 3.11 or newer" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv with $("$python" --version 2>&1)"
  if ! "$python" -m venv "$venv"; then
    echo "bootstrap: 'python -m venv' failed; on Debian install python3-venv" >&2
    exit 1
  fi
fi
echo "bootstrap: installing kubeemu[test] and tango-operator[dev] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# kubeemu (the Kubernetes API emulator of the tests and the demo) is its own distribution
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e './kubeemu[test]'
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
