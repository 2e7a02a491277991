# Sourced by scripts/demo and scripts/test: make ./.venv hold exactly what requirements.txt pins.
# Re-installs only when requirements.txt or pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${REPLAYSTORE_VENV:-$root/.venv}"
stamp="$venv/.replaystore-installed"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in $venv" >&2
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned dependencies (torch CPU wheel, h5py, pandas, ...)" >&2
  log="$venv/install.log"
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check -r "$root/requirements.txt" &&
         "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e "$root"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[setup] pip install failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
# torch's default thread count makes small ops erratic on 2-core machines.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
cd "$root"
