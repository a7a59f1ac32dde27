#!/usr/bin/env bash
# Prometheus and promtool (its rule checker and unit tester), from Debian's `prometheus` package, pinned by version
# and sha256. The package is downloaded and unpacked, never installed: no service starts, no root is needed once
# the package lists are there. Cached outside the clone; prints two lines on stdout: prometheus's path, then
# promtool's.
set -euo pipefail
version=2.42.0+ds-5+b6
deb=prometheus_2.42.0+ds-5+b6_amd64.deb
deb_sha256=3b0e0255b059a7696bd4a139a4a4eb24d71df067936a61ece5093559cbc7991c

cache="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/prometheus/$version"
prometheus="$cache/prometheus"
promtool="$cache/promtool"
if [ -x "$prometheus" ] && [ -x "$promtool" ]; then
  printf '%s\n%s\n' "$prometheus" "$promtool"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "prometheus: downloading Debian's prometheus $version" >&2
if ! (cd "$tmp" && apt-get download "prometheus=$version" >&2 2>/dev/null); then
  apt-get update -qq >&2
  (cd "$tmp" && apt-get download "prometheus=$version" >&2)
fi
echo "$deb_sha256  $tmp/$deb" | sha256sum --check --quiet >&2
dpkg-deb -x "$tmp/$deb" "$tmp/root"
mkdir -p "$cache"
for binary in prometheus promtool; do
  install -m 0755 "$tmp/root/usr/bin/$binary" "$cache/$binary.partial"
  mv "$cache/$binary.partial" "$cache/$binary"
done
printf '%s\n%s\n' "$prometheus" "$promtool"
