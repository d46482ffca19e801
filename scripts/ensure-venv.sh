#!/usr/bin/env bash
# The virtualenv at .venv with the locked dependencies, panelflow itself and the Python client of clients/python
# (both editable; the tests import the client). The lock carries the SHA-256 of every file of every pinned
# version and is installed with --require-hashes: a file that differs from the one locked fails the install.
# The two editable installs (local directories: nothing to hash) come after it, without dependencies. Reinstalls only when requirements.lock or either pyproject.toml
# changed since the last install (stamp file .venv/.panelflow-installed).
set -euo pipefail

cd "$(dirname "$0")/.."
STAMP=.venv/.panelflow-installed
say() { echo "ensure-venv: $*" >&2; }
die() {
    echo "ensure-venv: ERROR: $*" >&2
    exit 1
}

if [[ -f $STAMP && -x .venv/bin/python && $STAMP -nt requirements.lock && $STAMP -nt pyproject.toml &&
    $STAMP -nt clients/python/pyproject.toml ]]; then
    exit 0
fi

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "panelflow needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1) (set PYTHON=/path/to/python3.11)"

if [[ ! -x .venv/bin/python ]]; then
    # Debian and Ubuntu ship venv's pip bootstrap in a separate package.
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            pkg="python3-venv"
            ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt-cache show "python$ver-venv" >/dev/null 2>&1 && pkg="python$ver-venv"
            say "installing $pkg with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
        else
            die "$PYTHON cannot create virtualenvs: install python3-venv (sudo apt-get install python3-venv)"
        fi
    fi
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi

say "installing requirements.lock and panelflow into .venv"
LOG=.venv/install.log
pip_install() {
    .venv/bin/python -m pip install --disable-pip-version-check "$@" >>"$LOG" 2>&1 ||
        {
            tail -n 40 "$LOG" >&2
            die "pip install $* failed (full log: $LOG)"
        }
}
: >"$LOG"
pip_install --require-hashes -r requirements.lock
pip_install --no-deps -e .
# Its dependencies (httpx, standardwebhooks) are in requirements.lock.
pip_install --no-deps -e clients/python
.venv/bin/python -c 'import shared.cli.main' || die "panelflow is not importable from .venv after the install"
.venv/bin/python -c 'import panelflow_client' || die "panelflow_client is not importable from .venv after the install"
touch "$STAMP"
