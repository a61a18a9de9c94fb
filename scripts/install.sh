#!/usr/bin/env bash
# Install engine into .venv (and, with --test, the test extras plus the PostgreSQL server binaries
# the test harness starts). Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[[ "${1:-}" == "--test" ]] && with_test=1

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "engine needs Python >= 3.11"'

[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: pip then takes the CPU build where one is provided locally, and a range that
# 2.13.0 satisfies (pyproject) installs nothing more. Without it pip would fetch a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# The official Optuna sweeper pins optuna<3; engine's own sweeper (hydra_plugins/) replaced it.
.venv/bin/python -m pip uninstall -q -y hydra-optuna-sweeper 2>/dev/null || true
# constraints.txt pins every package to a set known to resolve and pass together: without it a fresh
# resolve of the test extras (moto's server extra, cfn-lint, ...) backtracks into Python-2-only releases.
# Regenerate after a dependency change: .venv/bin/pip freeze --exclude-editable > constraints.txt
if (( with_test )); then
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
else
  .venv/bin/python -m pip install -q -c constraints.txt -e .
fi

if (( with_test )); then
  # The `ray` extra in an environment of its own: hydra-ray-launcher pins cloudpickle<3, which pip can only
  # satisfy with joblib 1.5 beside it, while the main environment keeps joblib 1.6 (cloudpickle>=3).
  # tests/scale run the Ray cluster and the driver from here (about 1.5 minutes to build the first time).
  [[ -x .venv-ray/bin/python ]] || "$PY" -m venv .venv-ray
  .venv-ray/bin/python -m pip install -q --upgrade pip
  .venv-ray/bin/python -m pip install -q "torch==2.13.0"
  .venv-ray/bin/python -m pip uninstall -q -y hydra-optuna-sweeper 2>/dev/null || true
  .venv-ray/bin/python -m pip install -q -c constraints-ray.txt -e '.[ray]'
fi

apt_updated=0
# apt_install PACKAGE: quietly, as root or through sudo, the package index refreshed once per run.
# Returns 1 where there is no apt-get (macOS): the caller says what to do instead.
apt_install() {
  command -v apt-get >/dev/null || return 1
  local sudo=""; (( EUID == 0 )) || sudo="sudo"
  (( apt_updated )) || { $sudo apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
}

if (( with_test )); then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    apt_install postgresql || {
      echo "PostgreSQL server binaries (initdb, pg_ctl) not found. On macOS: brew install postgresql@15" >&2
      exit 1
    }
  fi
  # Debian's Chromium for the MLflow UI browser test (Playwright drives it by path): Playwright's own
  # `playwright install` downloads a browser build from outside the package registries, which fails offline.
  if [[ ! -x /usr/bin/chromium ]]; then
    apt_install chromium || echo "Chromium not found at /usr/bin/chromium; the MLflow UI browser test will skip" >&2
  fi
fi
if (( with_test )); then
  # TimescaleDB for the storage and ingest suites: host packages on Debian 13, a cached Debian 13 root
  # elsewhere (scripts/timescaledb.sh). Not fatal: where it cannot be built its tests skip with the reason.
  bash scripts/timescaledb.sh >/dev/null || echo "TimescaleDB unavailable; its tests will skip" >&2
fi
echo "engine installed in .venv"
