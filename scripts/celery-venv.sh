#!/usr/bin/env bash
# celery-venv.sh - the venv with Celery that tests/integration/test_celery.py
# runs its workers from: .cache/celery/venv, every package pinned in
# tests/integration/celery-requirements.txt, from PyPI with pip.
#
# Idempotent: a stamp holds the requirements it was built from, so a second
# run does nothing and a changed pin rebuilds it. Prints the venv's path.
# Needs Debian's python3-venv (scripts/setup.sh installs it).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly REQ="$REPO_ROOT/tests/integration/celery-requirements.txt"
readonly VENV="$REPO_ROOT/.cache/celery/venv"
readonly STAMP="$VENV/.requirements"

die() {
  printf 'celery-venv.sh: %s\n' "$*" >&2
  exit 1
}

if [[ -x "$VENV/bin/celery" && -f "$STAMP" ]] && cmp -s "$REQ" "$STAMP"; then
  echo "$VENV"
  exit 0
fi

echo "celery-venv.sh: installing $(grep -c '==' "$REQ") pinned packages into $VENV" >&2
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
# --no-deps: the file pins the whole closure, so pip resolves nothing itself.
timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$REQ" >&2 ||
  die "pip install -r $REQ failed"
"$VENV/bin/python" -m pip check >&2 || die "the pinned set is incomplete (pip check)"
cp "$REQ" "$STAMP"
echo "$VENV"
