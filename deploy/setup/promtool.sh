#!/usr/bin/env bash
# promtool (Prometheus's rule checker and unit tester), from Debian's `prometheus` package, pinned by version and
# sha256. The package is downloaded and unpacked, never installed: no service starts, no root is needed once the
# package lists are there. Cached outside the clone; prints promtool's path on stdout.
set -euo pipefail
version=2.42.0+ds-5+b6
deb=prometheus_2.42.0+ds-5+b6_amd64.deb
deb_sha256=3b0e0255b059a7696bd4a139a4a4eb24d71df067936a61ece5093559cbc7991c

cache="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/prometheus/$version"
promtool="$cache/promtool"
if [ -x "$promtool" ]; then
  echo "$promtool"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "promtool: downloading Debian's prometheus $version" >&2
if ! (cd "$tmp" && apt-get download "prometheus=$version" >&2 2>/dev/null); then
  apt-get update -qq >&2
  (cd "$tmp" && apt-get download "prometheus=$version" >&2)
fi
echo "$deb_sha256  $tmp/$deb" | sha256sum --check --quiet >&2
dpkg-deb -x "$tmp/$deb" "$tmp/root"
mkdir -p "$cache"
install -m 0755 "$tmp/root/usr/bin/promtool" "$promtool.partial"
mv "$promtool.partial" "$promtool"
echo "$promtool"
