#!/usr/bin/env bash
# valijson.sh - put the valijson headers hopper's JSON Schema validator
# (src/jsonschema.cc) compiles against into .cache/valijson-<version>.
#
# Why not `apt-get install libvalijson-dev`: Debian 12's package (1.0+repack-2)
# depends on qtbase5-dev, libpoco-dev and other development packages for
# the adapters of JSON libraries hopper does not use; installing it pulls
# in hundreds of megabytes. valijson is header-only, and the headers
# hopper includes (the nlohmann-json adapter) need only nlohmann-json3-dev,
# which setup.sh installs. So the .deb is downloaded (apt checks the
# archive's signatures) and unpacked here with dpkg-deb, without
# installing it or its dependencies. Then our patches
# (scripts/valijson-patches/, each saying why) are applied.
#
#   scripts/valijson.sh          unpack unless already there; prints the include directory
#   scripts/valijson.sh --force  unpack again
#
# Needs apt-get and dpkg-deb (Debian 12). No root needed unless apt's
# package lists are empty (a fresh container), then it runs apt-get update.

set -euo pipefail

readonly VERSION=1.0
readonly DEB_VERSION=1.0+repack-2
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PREFIX="$REPO_ROOT/.cache/valijson-$VERSION"
readonly INCLUDE="$PREFIX/usr/include"
readonly PATCHES="$REPO_ROOT/scripts/valijson-patches"
# The headers are current when they carry our patches as they are now.
patch_stamp() { cat "$PATCHES"/*.patch | sha256sum | cut -d' ' -f1; }

die() {
  printf 'valijson.sh: %s\n' "$*" >&2
  exit 1
}

if [[ "${1:-}" != "--force" && -f "$INCLUDE/valijson/validator.hpp" &&
  "$(cat "$PREFIX/hopper-patches.sha256" 2>/dev/null)" == "$(patch_stamp)" ]]; then
  echo "$INCLUDE"
  exit 0
fi

command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (this script is for Debian 12)"

work="$(mktemp -d "$REPO_ROOT/.cache/valijson-dl.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# As root apt would download as the _apt user, who cannot write here.
apt_opts=()
((EUID == 0)) && apt_opts+=(-o "APT::Sandbox::User=root")
download() { (cd "$work" && apt-get "${apt_opts[@]}" -qq download "libvalijson-dev=$DEB_VERSION" >&2); }

echo "valijson.sh: downloading Debian's libvalijson-dev $DEB_VERSION (headers only, not installed)" >&2
if ! download; then
  # A fresh container has no package lists: fetch them once and retry.
  ((EUID == 0)) || die "cannot download libvalijson-dev $DEB_VERSION; run 'apt-get update' as root and try again"
  apt-get -qq update >&2 || die "apt-get update failed"
  download || die "cannot download libvalijson-dev $DEB_VERSION from Debian's archive (is bookworm in /etc/apt/sources.list?)"
fi

rm -rf "$PREFIX"
dpkg-deb -x "$work"/libvalijson-dev_*.deb "$PREFIX" ||
  die "cannot unpack $(basename "$work"/libvalijson-dev_*.deb)"
[[ -f "$INCLUDE/valijson/validator.hpp" ]] || die "no valijson/validator.hpp under $INCLUDE"
for p in "$PATCHES"/*.patch; do
  patch -d "$INCLUDE" -p1 --forward --quiet <"$p" >&2 ||
    die "cannot apply $(basename "$p") to valijson $DEB_VERSION"
done
patch_stamp >"$PREFIX/hopper-patches.sha256"
echo "$INCLUDE"
