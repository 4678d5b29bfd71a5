#!/usr/bin/env bash
# Regenerates every golden file under tests/reference/golden with Debian's numpy/scipy.
# `command -p` finds Debian's python3, not the interpreter first on PATH (which lacks them).
set -euo pipefail
cd "$(dirname "$0")"
command -p python3 features_reference.py
command -p python3 recordings_reference.py
command -p python3 models_reference.py
command -p python3 training_reference.py
command -p python3 anomaly_reference.py
