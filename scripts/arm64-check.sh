#!/usr/bin/env bash
# ARM64 kept working: publishes the self-contained linux-arm64 build (scripts/publish.sh) and runs it under
# qemu-aarch64-static with Debian's arm64 libraries. Checks that `info` reports arm64 with NEON (AdvSimd) and the
# Vector128 kernel path, and that the demo (simulated sensors → embedded MQTT broker → the daemon) steps and raises its
# alerts in 20 s. Emulated speed means nothing; only that it runs and classifies. Installs qemu-user-static and the
# arm64 libraries with apt-get when they are missing (as root). Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
check() { # check <name> <condition exit status>
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "  passed: $1"; else failed=$((failed + 1)); echo "  FAILED: $1"; fi
}

if ! command -v qemu-aarch64-static >/dev/null || ! dpkg -s libc6:arm64 libstdc++6:arm64 libssl3:arm64 libicu72:arm64 zlib1g:arm64 libmosquitto1:arm64 >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then echo "qemu-user-static and Debian's arm64 libraries are missing (run as root to install them)" >&2; echo "0 passed, 1 failed"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  dpkg --add-architecture arm64
  apt-get update -qq && apt-get install -y -qq qemu-user-static libc6:arm64 libstdc++6:arm64 libssl3:arm64 libicu72:arm64 zlib1g:arm64 libmosquitto1:arm64 >/dev/null
fi

scripts/publish.sh linux-arm64 >/dev/null
check "publish linux-arm64 (self-contained)" $?
edge=dist/linux-arm64/signal-edge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

timeout 120 qemu-aarch64-static "$edge" info --json > "$work/info.json" 2>&1
check "info runs under qemu-aarch64" $?
grep -q '"architecture": "arm64"' "$work/info.json"; check "info: architecture arm64" $?
grep -q '"kernel_path": "Vector128"' "$work/info.json"; check "info: kernel path Vector128" $?
grep -q 'AdvSimd' "$work/info.json"; check "info: NEON (AdvSimd) in use" $?

timeout 120 qemu-aarch64-static "$edge" demo --duration 20 --http none --output "$work/demo.lp" > "$work/demo.log" 2>&1
check "demo runs 20 s under qemu-aarch64" $?
summary=$(grep -Eo 'demo stopped: [0-9,]+ steps, [0-9,]+ alerts raised' "$work/demo.log" || true)
echo "  $summary"
steps=$(echo "$summary" | awk '{gsub(",", "", $3); print $3 + 0}')
alerts=$(echo "$summary" | awk '{gsub(",", "", $5); print $5 + 0}')
[ "${steps:-0}" -ge 500 ]; check "demo: at least 500 steps classified" $?
[ "${alerts:-0}" -ge 1 ]; check "demo: alerts raised" $?
[ "$failed" -eq 0 ] || cat "$work/info.json" "$work/demo.log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
