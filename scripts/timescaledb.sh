#!/usr/bin/env bash
# Provide PostgreSQL 17 + TimescaleDB server binaries for the test harness and print the directory that
# holds `initdb`/`pg_ctl`/`postgres`, plus the chroot root (empty when none is needed), as two lines:
#   BINDIR=/usr/lib/postgresql/17/bin
#   ROOT=/root/.cache/engine/trixie-tsdb        (or ROOT= on Debian 13, where the host has the packages)
#
# Debian 13 ships postgresql-17-timescaledb (the Apache edition); Debian 12 does not, so there a minimal
# Debian 13 root is built once with Debian's own debootstrap and cached outside the clone (about 35 s and
# 600 MB). The mirror is taken from this machine's own apt sources. Needs root and the package registry;
# prints a reason on stderr and exits 3 when it cannot, so the harness can skip the TimescaleDB tests.
set -euo pipefail

CACHE=${ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/engine}
ROOT="$CACHE/trixie-tsdb"
PKGS="postgresql-17 postgresql-17-timescaledb"

cannot() { echo "timescaledb: $*" >&2; exit 3; }

if [[ -f /etc/debian_version ]] && [[ "$(cut -d. -f1 /etc/debian_version)" == 13* ]]; then
  if [[ ! -x /usr/lib/postgresql/17/bin/initdb ]] || ! ls /usr/lib/postgresql/17/lib/timescaledb*.so >/dev/null 2>&1; then
    (( EUID == 0 )) || cannot "not root: run 'apt-get install $PKGS' as root"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >/dev/null \
      || cannot "apt-get install $PKGS failed"
  fi
  echo "BINDIR=/usr/lib/postgresql/17/bin"
  echo "ROOT="
  exit 0
fi

if [[ -f "$ROOT/.engine-ready" ]]; then
  echo "BINDIR=/usr/lib/postgresql/17/bin"
  echo "ROOT=$ROOT"
  exit 0
fi

(( EUID == 0 )) || cannot "building a Debian 13 root for TimescaleDB needs root (chroot, debootstrap)"
command -v apt-get >/dev/null || cannot "no apt-get on this machine"

mirror=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  [[ -f "$f" ]] || continue
  mirror=$(grep -Eo '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' "$f" | grep -v security | head -1 | awk '{print $2}')
  [[ -n "$mirror" ]] && break
done
[[ -n "$mirror" ]] || cannot "no Debian mirror found in this machine's apt sources"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE"
partial="$ROOT.partial"
rm -rf "$partial"

echo "timescaledb: building a Debian 13 root in $ROOT (once; ~35 s)" >&2
( cd "$work" && apt-get download debootstrap >/dev/null 2>&1 ) \
  || { apt-get update -qq && ( cd "$work" && apt-get download debootstrap >/dev/null ); } \
  || cannot "apt-get download debootstrap failed (no package registry?)"
dpkg-deb -x "$work"/debootstrap_*.deb "$work/ds"
DEBOOTSTRAP_DIR="$work/ds/usr/share/debootstrap" "$work/ds/usr/sbin/debootstrap" \
  --variant=minbase trixie "$partial" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; cannot "debootstrap trixie failed"; }

printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
chmod +x "$partial/usr/sbin/policy-rc.d"
mkdir -p "$partial/etc/postgresql-common"
echo "create_main_cluster = false" >"$partial/etc/postgresql-common/createcluster.conf"
cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true
chroot "$partial" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends $PKGS && apt-get clean" >"$work/apt.log" 2>&1 \
  || { tail -20 "$work/apt.log" >&2; cannot "installing $PKGS in the Debian 13 root failed"; }
touch "$partial/.engine-ready"
rm -rf "$ROOT"
mv "$partial" "$ROOT"
echo "BINDIR=/usr/lib/postgresql/17/bin"
echo "ROOT=$ROOT"
