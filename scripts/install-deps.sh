#!/usr/bin/env bash
# Installs the Debian 12 packages that OpenSense needs to build, run and test.
# Idempotent and quiet when everything is already there. Run as root.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang
  # libraries
  libexpected-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libcctz-dev libtomlplusplus-dev libsqlite3-dev tzdata
  libboost-dev libsimdjson-dev libssl-dev libcrypt-dev libpq-dev mosquitto-dev libmosquitto-dev
  # services the tests start on loopback (MQTT broker, PostgreSQL 15, the Caddy TLS proxy,
  # promtool from prometheus; systemd-analyze checks the units)
  mosquitto mosquitto-clients postgresql-15 caddy prometheus systemd
  # backups: encryption to age recipients (opensense backup, backup_test); physical PostgreSQL
  # backups are zstd-compressed tars (pg_basebackup from postgresql-15)
  age zstd tar
  # compliance reports: PDF via cairo + pango with a packaged font; poppler-utils (pdftotext,
  # pdfinfo, pdftoppm) checks the rendered reports in reports_test
  libcairo2-dev libpango1.0-dev fonts-dejavu-core poppler-utils
  # notifications: the dispatcher's HTTPS client (Postmark, Telegram, webhooks)
  libcurl4-openssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev sqlite3 openssl curl
  # the peers of bench/peers/run (its smoke mode is in the test suite)
  influxdb victoria-metrics
  # the web dashboard (web/): built with Node.js + npm during the build, tested end to end in
  # Chromium (playwright-core drives /usr/bin/chromium)
  nodejs npm chromium
)

missing=()
for p in "${packages[@]}"; do
  # A Node.js from elsewhere (e.g. a nodesource nodejs, which bundles npm) is kept: Debian's npm
  # package would conflict with it. What the build needs is the node and npm commands.
  if [[ "$p" == nodejs || "$p" == npm ]] && command -v "${p/nodejs/node}" >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
