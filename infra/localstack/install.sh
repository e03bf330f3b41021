#!/usr/bin/env bash
# Installs LocalStack (the release pinned below) into a virtual environment of its own, to run on this
# machine without Docker: `make localstack`, then `SDMW_EMULATOR=localstack make up`.
#
# usage: infra/localstack/install.sh <venv dir>
#
# LocalStack needs Python 3.13 or newer, although its metadata says 3.10: its code uses 3.12's syntax, and its
# EventBridge 3.13's warnings.deprecated. The project's own venv stays as it is and only talks to it over HTTP.
set -euo pipefail

RELEASE=4.14.0 # keep in step with docker-compose.localstack.yml's image tag
VENV=${1:?usage: $0 <venv dir>}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('localstack-core') != '$RELEASE' or sys.version_info < (3, 13))" 2>/dev/null; then
  echo "LocalStack $RELEASE is installed in $VENV"
  exit 0
fi

# The first Python >= 3.13 found: on PATH, then pyenv's installed versions.
find_python() {
  local candidates=(python3.14 python3.13 python3)
  local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  candidates+=("$pyenv_root"/versions/3.1[3-9]*/bin/python3)
  for candidate in "${candidates[@]}"; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! PYTHON=$(find_python); then
  echo "LocalStack $RELEASE needs Python 3.13 or newer, and none was found (tried python3.14, python3.13," >&2
  echo "python3 on PATH and pyenv's versions). Install one (e.g. 'pyenv install 3.13'), or run LocalStack" >&2
  echo "in Docker instead: docker compose -f docker-compose.localstack.yml up -d" >&2
  exit 1
fi

echo "Installing LocalStack $RELEASE into $VENV with $PYTHON ($("$PYTHON" --version))"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -c "$HERE/constraints.txt" "localstack-core[runtime]==$RELEASE"
echo "LocalStack $RELEASE installed in $VENV"
