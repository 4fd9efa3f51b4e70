#!/usr/bin/env bash
# Create or refresh .venv with the newest usable Python >= 3.11 and install the project with its dev tools.
# PYTHON=/path/to/python (or a command name) overrides the choice. Fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

# `bootstrap.sh --test-tools` (make test): the Debian programs the browser and monitoring tests drive, installed
# when missing: chromium (headless, for Playwright) and prometheus (the server and promtool). Needs root or
# password-less sudo; without them the tests say what is missing (skipped outside CI, failed in CI).
if [ "${1:-}" = "--test-tools" ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  { command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && exit 0
  if [ "$(id -u)" = 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo ">> ${missing[*]} not installed and no root: the browser/Prometheus tests will be skipped" >&2
    exit 0
  fi
  echo ">> installing Debian packages for the browser and Prometheus tests: ${missing[*]}" >&2
  if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      "${missing[@]}" >/dev/null; }; then
    echo ">> could not install ${missing[*]}: the browser/Prometheus tests will say so" >&2
  fi
  exit 0
fi
STAMP="$VENV/.bootstrap-stamp"

works() { # prints the interpreter's absolute path if it really runs and is >= 3.11
  "$1" -c 'import sys; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null
}

choose_python() {
  if [ -n "${PYTHON:-}" ]; then
    works "$PYTHON" || { echo "PYTHON=$PYTHON does not run or is older than 3.11" >&2; exit 2; }
    return
  fi
  local candidates=()
  # pyenv keeps real interpreters under its root; its bare shims fail unless PYENV_VERSION is set.
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    for d in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -t. -k2,2nr -k3,3nr); do
      candidates+=("$d/bin/python3")
    done
  fi
  candidates+=(python3.14 python3.13 python3.12 python3.11 python3)
  local best="" best_ver=0
  for c in "${candidates[@]}"; do
    local exe ver
    exe=$(works "$c") || continue
    ver=$("$exe" -c 'import sys; print(sys.version_info[0]*100 + sys.version_info[1])')
    if [ "$ver" -gt "$best_ver" ]; then best="$exe"; best_ver="$ver"; fi
  done
  [ -n "$best" ] || { echo "no Python >= 3.11 found; install one or set PYTHON=" >&2; exit 2; }
  echo "$best"
}

PY=$(choose_python)
want="$("$PY" -c 'import sys; print(sys.version)' | head -1)|$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
have_ver=$("$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null | head -1 || true)
if [ "$have_ver" != "$("$PY" -c 'import sys; print(sys.version)' | head -1)" ]; then
  echo ">> creating $VENV with $PY" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
echo "$want" > "$STAMP"
echo ">> $VENV ready ($("$VENV/bin/python" --version))" >&2
