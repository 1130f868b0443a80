#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv: Python 3.11, every extra, editable install.
# Re-running is cheap: it reinstalls only when pyproject.toml or the checkout's path changed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "bootstrap: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

key="$(sha256sum "$root/pyproject.toml" | cut -c1-16) $root"
stamp="$venv/.lookalike-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
# torch/torchvision come from this machine's disk through pip (uv and poetry would download GBs).
"$venv/bin/python" -m pip install --quiet -e "$root[all,dev]"
echo "$key" > "$stamp"
echo "bootstrap: $venv is ready"
