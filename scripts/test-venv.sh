#!/usr/bin/env bash
# test-venv.sh NAME - a venv of pinned PyPI packages the integration tests
# run a tool from: .cache/NAME/venv, every package pinned in
# tests/integration/NAME-requirements.txt, installed with pip.
#   celery     the Celery workers of tests/integration/test_celery.py
#   contracts  confluent-kafka's Avro deserializer (fastavro), which
#              tests/integration/test_contracts.py reads records back with
#
# Idempotent: a stamp holds the requirements it was built from, so a second
# run does nothing and a changed pin rebuilds it. Prints the venv's path.
# Needs Debian's python3-venv (scripts/setup.sh installs it).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly NAME="${1:-celery}"
readonly REQ="$REPO_ROOT/tests/integration/$NAME-requirements.txt"
readonly VENV="$REPO_ROOT/.cache/$NAME/venv"
readonly STAMP="$VENV/.requirements"

die() {
  printf 'test-venv.sh: %s\n' "$*" >&2
  exit 1
}

[[ -f "$REQ" ]] || die "no $REQ"
if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && cmp -s "$REQ" "$STAMP"; then
  echo "$VENV"
  exit 0
fi

echo "test-venv.sh: installing $(grep -c '==' "$REQ") pinned packages into $VENV" >&2
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
# --no-deps: the file pins the whole closure, so pip resolves nothing itself.
timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$REQ" >&2 ||
  die "pip install -r $REQ failed"
"$VENV/bin/python" -m pip check >&2 || die "the pinned set is incomplete (pip check)"
cp "$REQ" "$STAMP"
echo "$VENV"
