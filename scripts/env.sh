# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: a virtualenv in .venv with the project installed.
# Usage: source scripts/env.sh EXTRAS   (e.g. "dev" or "demo")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${LEARNROOM_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# -e: the tests and the demo run the code of this checkout
"$VENV/bin/python" -m pip install -q -e "${ROOT}[$1]"
export PATH="$VENV/bin:$PATH"
