#!/usr/bin/env bash
# Refreshes the demo's bundled model: generates simulated bearing vibration with the generator the demo's sensors use
# (other seeds) and trains a GRU on it with our own trainer ('signal-edge demo-model'). Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet run -c Release --project src/Signal.Edge -- demo-model --out src/Signal.Edge/Demo/demo-bearing.sigm
rm -f src/Signal.Edge/Demo/demo-bearing.sigm.report.html
