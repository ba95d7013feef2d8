#!/usr/bin/env bash
# librdkafka.sh - build the librdkafka hopper links: Debian 13's source
# package (2.8.0), into .cache/librdkafka-<version>.
#
# Why not Debian 12's librdkafka-dev (2.0.2): after a "possibly persisted"
# produce error (a request timed out, a connection dropped mid-request),
# 2.0.2's idempotent producer can raise a fatal "sequence desynchronization"
# error (fixed in librdkafka 2.3, #4438). Under a network partition that is
# exactly what happens: the fault suite's leader-isolate run raised it, and
# hopper nacked everything in flight and rebuilt its producers. README
# ("librdkafka") has the measurements behind the choice.
#
# The source comes from Debian's archive through apt (a private deb-src
# list for trixie, so the machine's own apt sources are not touched; apt
# checks the archive's signatures), with Debian's patches applied, then
# ours (scripts/librdkafka-patches/, each saying why). The build
# is static (rdkafka-static.pc): hopper carries the library, and needs only
# the system's libssl, libsasl2, libzstd, liblz4 and zlib at run time.
#
#   scripts/librdkafka.sh          build unless already built; prints the prefix
#   scripts/librdkafka.sh --force  build again
#
# Needs dpkg-dev, build-essential and the -dev packages setup.sh installs.
# About a minute on two cores.

set -euo pipefail

readonly VERSION=2.8.0
readonly DEB_VERSION=2.8.0-1
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PREFIX="$REPO_ROOT/.cache/librdkafka-$VERSION"
readonly WORK="$REPO_ROOT/.cache/librdkafka-src"
readonly PATCHES="$REPO_ROOT/scripts/librdkafka-patches"
# A build is current when it has our patches as they are now.
patch_stamp() { cat "$PATCHES"/*.patch | sha256sum | cut -d' ' -f1; }

die() {
  printf 'librdkafka.sh: %s\n' "$*" >&2
  exit 1
}

if [[ "${1:-}" != "--force" && -f "$PREFIX/lib/pkgconfig/rdkafka-static.pc" &&
  "$(cat "$PREFIX/hopper-patches.sha256" 2>/dev/null)" == "$(patch_stamp)" ]]; then
  echo "$PREFIX"
  exit 0
fi

command -v dpkg-source >/dev/null || die "dpkg-source is missing (package dpkg-dev; run scripts/setup.sh)"

rm -rf "$WORK" "$PREFIX"
mkdir -p "$WORK/lists/partial"
# deb.debian.org signs trixie with the keys Debian 12 ships.
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$WORK/sources.list"
# Our own lists and no locks: no root needed, the machine's apt untouched.
apt_opts=(
  -o "Dir::Etc::sourcelist=$WORK/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::lists=$WORK/lists" -o "APT::Get::List-Cleanup=0"
  -o "Debug::NoLocking=1"
)
# As root apt would fetch as the _apt user, who cannot write here.
((EUID == 0)) && apt_opts+=(-o "APT::Sandbox::User=root")
echo "librdkafka.sh: fetching Debian's librdkafka $DEB_VERSION source package" >&2
apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update (trixie deb-src) failed"
(cd "$WORK" && apt-get "${apt_opts[@]}" -qq source --download-only "librdkafka=$DEB_VERSION" >&2) ||
  die "cannot fetch librdkafka $DEB_VERSION's source package from trixie"
(cd "$WORK" && dpkg-source -x "librdkafka_$DEB_VERSION.dsc" src >"$WORK/unpack.log" 2>&1) ||
  die "cannot unpack librdkafka_$DEB_VERSION.dsc (see $WORK/unpack.log)"
for p in "$PATCHES"/*.patch; do
  patch -d "$WORK/src" -p1 --forward --quiet <"$p" >>"$WORK/unpack.log" 2>&1 ||
    die "cannot apply $(basename "$p") (see $WORK/unpack.log)"
done

echo "librdkafka.sh: building librdkafka $VERSION into $PREFIX" >&2
(
  cd "$WORK/src"
  ./configure --prefix="$PREFIX" >"$WORK/configure.log" 2>&1 ||
    die "configure failed (see $WORK/configure.log)"
  make -j"$(nproc)" -C src >"$WORK/make.log" 2>&1 || die "make failed (see $WORK/make.log)"
  make -C src install >>"$WORK/make.log" 2>&1 || die "make install failed (see $WORK/make.log)"
)
[[ -f "$PREFIX/lib/pkgconfig/rdkafka-static.pc" ]] || die "no rdkafka-static.pc in $PREFIX"
# Only the static library is linked; the shared one would tempt a runtime
# dependency on this folder.
rm -f "$PREFIX"/lib/librdkafka.so*
patch_stamp >"$PREFIX/hopper-patches.sha256"
rm -rf "$WORK"
echo "$PREFIX"
