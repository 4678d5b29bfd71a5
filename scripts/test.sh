#!/usr/bin/env bash
# Runs every test of the solution and ends with "N passed, N failed".
# Installs what the tests need with apt-get when it is missing (run as root on a fresh Debian machine).
# Extra arguments go to `dotnet test` (e.g. --filter).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suites need: the Engine suite talks to a private mosquitto broker through libmosquitto
# and checks it with the independent mosquitto_pub client; the storage suite writes to a private influxd (1.6.x).
# The Edge suite loads the dashboard in Debian's headless chromium (screenshot: tests/Signal.Edge.Tests/bin/Release/
# net10.0/artifacts/dashboard.png). The cluster suite runs three silos against a private redis-server. Golden
# numpy/scipy/PyTorch files are committed.
packages=(libmosquitto1 mosquitto mosquitto-clients influxdb chromium redis-server)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "missing packages: ${missing[*]} (run as root to install them)" >&2; exit 1; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test -c Release "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Both summary formats: "Passed!  - Failed: 0, Passed: 58, ..." (minimal) and "     Passed: 58" (normal verbosity).
sum() { { grep -Eo "$1: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}'; }
passed=$(sum Passed)
failed=$(sum Failed)
echo "$passed passed, $failed failed"
exit "$status"
