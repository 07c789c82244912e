# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: a virtualenv in .venv with the project installed.
# Usage: source scripts/env.sh EXTRAS   (e.g. "dev" or "demo")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${LEARNROOM_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi
# -e: the tests and the demo run the code of this checkout, so only a change of the
# dependencies (pyproject.toml) or of the extras asked for needs pip again: a quick start.
stamp="$VENV/.learnroom-installed"
hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if ! grep -qxF "$1 $hash" "$stamp" 2>/dev/null; then
    # pip's and setuptools' chatter goes to a log, shown only when the install fails
    echo "installing learnroom[$1] into $VENV (log: $VENV/pip.log)" >&2
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${ROOT}[$1]" \
        >"$VENV/pip.log" 2>&1; then
        cat "$VENV/pip.log" >&2
        exit 1
    fi
    # lines of other extras installed from the same pyproject.toml stay valid
    { grep -F " $hash" "$stamp" 2>/dev/null || true; echo "$1 $hash"; } >"$stamp.new"
    mv "$stamp.new" "$stamp"
fi
export PATH="$VENV/bin:$PATH"
