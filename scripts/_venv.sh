# Sourced by scripts/*: make sure .venv exists and holds the package (with EXTRAS if set).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
    "$PY" -m venv .venv
fi
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing trio-crawler${EXTRAS:+ with [$EXTRAS]} into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            -e ".${EXTRAS:+[$EXTRAS]}" >.venv/install.log 2>&1; then
        cat .venv/install.log >&2
        echo "installation failed (log above, also in .venv/install.log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
# bytecode, as a regular install writes it: an editable install has none, and where
# PYTHONDONTWRITEBYTECODE is set (this machine) every process would compile the package from
# source (0.15-0.2 s of CPU per process: each crawl, each of its workers)
.venv/bin/python -m compileall -q trio_crawler >/dev/null 2>&1 || true
