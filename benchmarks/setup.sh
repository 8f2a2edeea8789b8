#!/usr/bin/env bash
# Installs what the benchmark runs besides dsdb and the plain-driver baselines: py-spy for
# profiling, Sling and dlt from PyPI (the `bench` extra, into the active environment) and
# pgloader (a Debian package). Run from the repository with the virtualenv activated:
#   . .venv/bin/activate && bash benchmarks/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -e '.[bench]'
if ! command -v pgloader > /dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo apt-get install -y pgloader
fi
