#!/usr/bin/env bash
# The Debian packages, installed for real (CI runs as root on a throwaway machine): builds both with
# scripts/package-deb.sh (reusing the AOT builds arm64-check made), runs lintian on them, installs the amd64 one with
# dpkg, checks the user, state folder, token and conffile it makes, starts the unit's own command line (ExecStart, as
# its User=, with the environment systemd would give it) against a private mosquitto until /readyz answers, feeds it
# simulated sensors, reloads it with SIGHUP, stops it with SIGTERM (a checkpoint must be written), then purges the
# package: nothing of it may be left but the "signal" user. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
check() { # check <name> <condition exit status>
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "  passed: $1"; else failed=$((failed + 1)); echo "  FAILED: $1"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if [ "$(id -u)" -ne 0 ]; then echo "deb-check: installs a package for real, so it must run as root (CI does)" >&2; echo "0 passed, 1 failed"; exit 1; fi
if dpkg -s signal-edge >/dev/null 2>&1; then echo "deb-check: signal-edge is installed on this machine already; not touching it" >&2; echo "0 passed, 1 failed"; exit 1; fi
# lintian and mosquitto for the checks; clang, lld and Debian's arm64 C library for the AOT builds when arm64-check
# has not made them already.
if ! command -v lintian >/dev/null || ! command -v mosquitto >/dev/null || ! command -v clang >/dev/null || ! command -v ld.lld >/dev/null \
   || ! dpkg -s libc6-dev:arm64 libgcc-12-dev:arm64 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  dpkg --add-architecture arm64
  apt-get update -qq && apt-get install -y -qq lintian mosquitto clang lld libc6-dev:arm64 libgcc-12-dev:arm64 >/dev/null
fi

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/Signal.Edge/Signal.Edge.csproj)
scripts/package-deb.sh --reuse arm64 amd64
check "both packages built" $?
amd64="dist/signal-edge_${version}_amd64.deb"
arm64="dist/signal-edge_${version}_arm64.deb"
[ -f "$amd64" ] && [ -f "$arm64" ] || finish

for deb in "$amd64" "$arm64"; do
  lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges'
  check "lintian: no error or warning in $(basename "$deb")" "${PIPESTATUS[0]}"
  dpkg-deb --contents "$deb" | awk '{print $6}' > /tmp/deb-contents.$$
  missing=0
  for f in ./usr/bin/signal-edge ./lib/systemd/system/signal-edge.service ./etc/signal/edge.json ./usr/share/man/man1/signal-edge.1.gz ./usr/share/doc/signal-edge/copyright; do
    grep -qx "$f" /tmp/deb-contents.$$ || { echo "  $deb lacks $f"; missing=1; }
  done
  rm -f /tmp/deb-contents.$$
  [ "$missing" -eq 0 ]; check "contents of $(basename "$deb")" $?
done
dpkg-deb --field "$arm64" Architecture | grep -qx arm64; check "the arm64 package is for arm64" $?
unpacked=$(mktemp -d)
dpkg-deb -x "$arm64" "$unpacked"
od -An -tx1 -N20 "$unpacked/usr/bin/signal-edge" | tr -d ' \n' | grep -q '^7f454c460201010000000000000000000300b700'
check "its binary is an aarch64 ELF executable" $?
rm -rf "$unpacked"

had_user=0
getent passwd signal >/dev/null && had_user=1
dpkg -i "$amd64" > /tmp/deb-install.$$ 2>&1
check "dpkg -i installs the amd64 package" $?
cat /tmp/deb-install.$$ | sed 's/^/    /' | tail -3; rm -f /tmp/deb-install.$$
getent passwd signal | grep -q ':/var/lib/signal-edge:/usr/sbin/nologin$'; check "postinst: system user signal (home /var/lib/signal-edge, no login)" $?
[ "$(stat -c '%U:%G %a' /var/lib/signal-edge)" = "signal:signal 750" ]; check "postinst: /var/lib/signal-edge is signal's, 0750" $?
[ "$(stat -c '%U %a' /etc/signal/http-token)" = "root 600" ] && [ "$(wc -c < /etc/signal/http-token)" -ge 40 ]; check "postinst: /etc/signal/http-token, root-only, random" $?
dpkg-query -W -f='${Conffiles}\n' signal-edge | grep -q '/etc/signal/edge.json'; check "/etc/signal/edge.json is a conffile" $?
/usr/bin/signal-edge info > /tmp/deb-info.$$ 2>&1 && grep -q '^architecture *x64' /tmp/deb-info.$$; check "/usr/bin/signal-edge info runs" $?
rm -f /tmp/deb-info.$$

# The unit's command line, as systemd would start it.
unit=/lib/systemd/system/signal-edge.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
grep -q '^ExecReload=/bin/kill -HUP $MAINPID$' "$unit"; check "unit: systemctl reload sends SIGHUP" $?
[ "$exec_start" = "/usr/bin/signal-edge run --config /etc/signal/edge.json" ] && [ "$user" = signal ]; check "unit: ExecStart and User" $?
free_port() { command -p python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
broker=$(free_port); http=$(free_port)
work=$(mktemp -d)
chmod 0755 "$work"
mosquitto -p "$broker" > "$work/mosquitto.log" 2>&1 & mosquitto_pid=$!
install -o signal -g signal -m 0640 src/Signal.Edge/Demo/demo-bearing.sigm /var/lib/signal-edge/models/model.sigm
install -d -o signal -m 0500 "$work/credentials"   # LoadCredential=http-token:/etc/signal/http-token
install -o signal -m 0400 /etc/signal/http-token "$work/credentials/http-token"
mapfile -t unit_env < <(sed -n 's/^Environment=//p' "$unit" | tr ' ' '\n')
# setpriv execs (no session process in between), so $! is the daemon itself and gets the signals.
# shellcheck disable=SC2086
setpriv --reuid="$user" --regid="$user" --clear-groups env -i PATH=/usr/bin:/bin "${unit_env[@]}" STATE_DIRECTORY=/var/lib/signal-edge CREDENTIALS_DIRECTORY="$work/credentials" \
  SIGNAL__MQTT="mqtt://127.0.0.1:$broker" SIGNAL__HTTP__ADDRESS="127.0.0.1:$http" $exec_start > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/readyz" > /dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http/readyz" > /dev/null; check "the unit's command line starts as signal and becomes ready" $?
token=$(cat /etc/signal/http-token)
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/api/health")" = 401 ] \
  && curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$http/api/health" | grep -q '"ready":true'
check "the dashboard API wants the installed token" $?
/usr/bin/signal-edge simulate --mqtt "mqtt://127.0.0.1:$broker" --streams 2 --duration 3 > "$work/simulate.log" 2>&1
sleep 1
steps=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$http/api/health" | grep -o '"steps":[0-9]*' | cut -d: -f2)
[ "${steps:-0}" -ge 100 ]; check "it classifies the simulated sensors (${steps:-0} steps)" $?
kill -HUP "$daemon_pid"
for _ in $(seq 50); do grep -q 'reloaded from' "$work/daemon.log" && break; sleep 0.1; done
grep -q 'SIGHUP: reloading every model' "$work/daemon.log" && grep -q 'reloaded from' "$work/daemon.log"; check "SIGHUP (systemctl reload) reloads the model" $?
kill -TERM "$daemon_pid"; wait "$daemon_pid"
check "SIGTERM stops it cleanly" $?
[ "$(stat -c %U /var/lib/signal-edge/model.ckpt 2>/dev/null)" = signal ]
check "the stream checkpoint was written to the state directory (/var/lib/signal-edge/model.ckpt)" $?
kill "$mosquitto_pid" 2>/dev/null
[ "$failed" -eq 0 ] || tail -20 "$work/daemon.log"
rm -rf "$work"

dpkg --purge signal-edge > /dev/null 2>&1
check "dpkg --purge removes it" $?
left=0
for f in /usr/bin/signal-edge /lib/systemd/system/signal-edge.service /etc/signal /var/lib/signal-edge /usr/share/doc/signal-edge /usr/share/man/man1/signal-edge.1.gz; do
  [ -e "$f" ] && { echo "  left behind: $f"; left=1; }
done
[ "$left" -eq 0 ] && ! dpkg -s signal-edge >/dev/null 2>&1; check "nothing of the package is left (the signal user stays, as Debian does)" $?
[ "$had_user" -eq 1 ] || userdel signal 2>/dev/null
finish
