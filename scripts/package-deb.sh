#!/usr/bin/env bash
# Builds the Debian packages dist/signal-edge_<version>_arm64.deb and _amd64.deb with dpkg-deb (docs/deploy.md):
#   /usr/bin/signal-edge                       the NativeAOT build (scripts/publish.sh linux-arm64-aot / linux-x64-aot)
#   /lib/systemd/system/signal-edge.service    deploy/systemd/signal-edge.service, started as /usr/bin/signal-edge
#   /etc/signal/edge.json                      a conffile (deploy/debian/edge.json): one model, local broker
#   /usr/share/man/man1/signal-edge.1.gz, /usr/share/doc/signal-edge/{copyright,changelog.gz}
#   postinst: the "signal" system user, /var/lib/signal-edge (0750), /etc/signal/http-token; the unit is not started
#   (it needs a model first). prerm stops it; purge removes the state and the token.
# usage: scripts/package-deb.sh [--reuse] [arm64|amd64 ...]   (default: both; --reuse packs an existing dist/<aot build>)
set -euo pipefail
cd "$(dirname "$0")/.."
reuse=0
[ "${1:-}" = "--reuse" ] && { reuse=1; shift; }
arches=("$@")
[ ${#arches[@]} -eq 0 ] && arches=(arm64 amd64)
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/Signal.Edge/Signal.Edge.csproj)
[ -n "$version" ] || { echo "package-deb.sh: no <Version> in src/Signal.Edge/Signal.Edge.csproj" >&2; exit 1; }
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
# Set DEB_MAINTAINER to the name and address users should write to.
maintainer=${DEB_MAINTAINER:-Signal authors <signal-edge@example.org>}
for arch in "${arches[@]}"; do
  case "$arch" in
    arm64) build=linux-arm64-aot ;;
    amd64) build=linux-x64-aot ;;
    *) echo "package-deb.sh: unknown architecture '$arch' (arm64 or amd64)" >&2; exit 2 ;;
  esac
  if [ "$reuse" -eq 0 ] || [ ! -x "dist/$build/signal-edge" ]; then
    scripts/publish.sh "$build" > /dev/null
  fi

  root=$(mktemp -d)
  chmod 0755 "$root"
  trap 'rm -rf "$root"' EXIT
  install -D -m 0755 "dist/$build/signal-edge" "$root/usr/bin/signal-edge"
  # The packaged unit starts the native binary; everything else (hardening, notify, watchdog, reload) is the shipped unit.
  install -d "$root/lib/systemd/system"
  sed -e 's|^ExecStart=/usr/bin/dotnet /opt/signal-edge/signal-edge.dll run|ExecStart=/usr/bin/signal-edge run|' \
      -e '/^LoadCredential=mqtt-password:/d' \
      -e 's|^# "credentials": { "httpTokenFile": "http-token", "mqttPasswordFile": "mqtt-password" }.|# "credentials": { "httpTokenFile": "http-token" } (add LoadCredential=mqtt-password:... and "mqttPasswordFile" for a broker password).|' \
      -e 's|^Documentation=.*|Documentation=man:signal-edge(1) file:///usr/share/doc/signal-edge|' \
      -e '/^#   sudo cp deploy/d' \
      deploy/systemd/signal-edge.service > "$root/lib/systemd/system/signal-edge.service"
  chmod 0644 "$root/lib/systemd/system/signal-edge.service"
  grep -q '^ExecStart=/usr/bin/signal-edge run --config /etc/signal/edge.json$' "$root/lib/systemd/system/signal-edge.service" \
    || { echo "package-deb.sh: the unit's ExecStart was not rewritten" >&2; exit 1; }
  install -D -m 0644 deploy/debian/edge.json "$root/etc/signal/edge.json"
  install -d "$root/usr/share/man/man1" "$root/usr/share/doc/signal-edge" "$root/usr/share/lintian/overrides"
  install -m 0644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/signal-edge"
  gzip -9n < deploy/debian/signal-edge.1 > "$root/usr/share/man/man1/signal-edge.1.gz"
  install -m 0644 deploy/debian/copyright "$root/usr/share/doc/signal-edge/copyright"
  printf 'signal-edge (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
    "$version" "$(git describe --tags --always 2>/dev/null || echo a source tree)" "$maintainer" "$date" | gzip -9n > "$root/usr/share/doc/signal-edge/changelog.gz"

  install -d -m 0755 "$root/DEBIAN"
  for script in postinst prerm postrm; do install -m 0755 "deploy/debian/$script" "$root/DEBIAN/$script"; done
  echo /etc/signal/edge.json > "$root/DEBIAN/conffiles"
  (cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat > "$root/DEBIAN/control" <<CONTROL
Package: signal-edge
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: libc6 (>= 2.34), libssl3, passwd, init-system-helpers (>= 1.52)
Recommends: libmosquitto1
Suggests: mosquitto, influxdb
Section: net
Priority: optional
Homepage: https://github.com/signal/signal
Description: real-time sensor signal classification daemon for edge boards
 Subscribes to sensor readings over MQTT, extracts frequency and time-domain
 features per frame, steps a recurrent network (LSTM, GRU, RNN) once per frame
 with each stream's own state, and publishes a class and an anomaly score per
 step, raises and clears alerts, and stores them in InfluxDB.
 .
 One native binary (NativeAOT, no .NET runtime needed), a hardened systemd unit
 (sd_notify, watchdog, reload on SIGHUP) and a dashboard on 127.0.0.1:8080.
 Uses libmosquitto when installed, a managed MQTT client otherwise.
CONTROL
  deb="dist/signal-edge_${version}_${arch}.deb"
  dpkg-deb --root-owner-group --build "$root" "$deb" > /dev/null
  rm -rf "$root"
  trap - EXIT
  echo "$deb ($(du -h "$deb" | cut -f1))"
done
