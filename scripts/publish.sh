#!/usr/bin/env bash
# Builds signal-edge for deployment into dist/ (documented in docs/deploy.md):
#   dist/linux-arm64/  self-contained (no .NET needed on the board: Raspberry Pi OS 64-bit, Debian arm64)
#   dist/linux-x64/    self-contained
#   dist/portable/     framework-dependent (needs the .NET 10 runtime; any OS and architecture .NET runs on)
# and a .tar.gz of each. usage: scripts/publish.sh [linux-arm64|linux-x64|portable ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(linux-arm64 linux-x64 portable)
version=$(git describe --tags --always 2>/dev/null || echo dev)
mkdir -p dist
for target in "${targets[@]}"; do
  out="dist/$target"
  rm -rf "$out"
  case "$target" in
    linux-arm64|linux-x64)
      dotnet publish src/Signal.Edge -c Release -r "$target" --self-contained -p:InformationalVersion="$version" -o "$out" ;;
    portable)
      dotnet publish src/Signal.Edge -c Release --no-self-contained -p:InformationalVersion="$version" -o "$out" ;;
    *)
      echo "publish.sh: unknown target '$target' (linux-arm64, linux-x64 or portable)" >&2; exit 2 ;;
  esac
  tar -C dist -czf "dist/signal-edge-$version-$target.tar.gz" "$target"
  echo "dist/signal-edge-$version-$target.tar.gz ($(du -sh "$out" | cut -f1) unpacked)"
done
