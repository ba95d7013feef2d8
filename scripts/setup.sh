#!/usr/bin/env bash
# setup.sh - prepare a Debian 12 machine to build and test hopper.
#
# Installs the Debian packages hopper needs to build, test and run its local
# Kafka cluster (only those missing; apt-get update only if something is),
# builds the librdkafka hopper links (scripts/librdkafka.sh: Debian 13's
# 2.8.0 from its source package, into .cache/), unpacks the valijson
# headers (scripts/valijson.sh, into .cache/), resolves the Kafka jars
# with `contrib/kafka/cluster.sh fetch` (for KAFKA_VERSION, default 4.1.1),
# builds the schema registry from Maven Central jars with
# `contrib/registry/registry.sh fetch` (about a minute, once), then the venv
# with Celery from PyPI that tests/integration/test_celery.py runs workers
# from, and the one test_contracts.py reads Avro records back with
# (scripts/test-venv.sh, pinned versions).
# Safe to run repeatedly: when everything is in place it prints one line.
# Runs apt-get as root, or through sudo.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

readonly PACKAGES=(
  # build
  build-essential pkg-config clang-format
  librabbitmq-dev libevent-dev libyaml-dev libcmocka-dev libjemalloc-dev
  # librdkafka 2.8.0 built from source (scripts/librdkafka.sh): dpkg-source
  # and the libraries Debian builds it with
  dpkg-dev libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev
  # JSON Schema validation (src/jsonschema.cc): valijson's headers come
  # unpacked from libvalijson-dev (scripts/valijson.sh says why it is not
  # installed); they need nlohmann-json. The official test suite's cases
  # (make jsonschema-suite)
  nlohmann-json3-dev json-schema-test-suite
  # ... and RapidJSON, its fast path for valid bodies
  rapidjson-dev
  # the schema registry's answers (src/registry.c); Avro contracts
  # (src/avrojson.c): avro-c writes and reads the binary, jansson parses
  # the bodies and the schemas' defaults
  libavro-dev libjansson-dev
  # integration tests: AMQP and Kafka clients
  amqp-tools python3-pika python3-kombu python3-confluent-kafka python3-pytest
  # confluent-kafka's schema registry client and JSON deserializer
  # (test_contracts.py) need requests
  python3-requests
  kcat
  # test_celery.py's venv (Celery from PyPI)
  python3-venv
  # fuzzing (tests/fuzz): clang with its libFuzzer runtime
  clang libclang-rt-14-dev
  # memcheck runs of the integration suite (docs/limits.md)
  valgrind
  # the bridge (src/bridge.c): amqps:// through libevent_openssl (in
  # libevent-dev) and OpenSSL (libssl-dev, above); test_bridge.py runs a
  # private RabbitMQ node with a TLS listener whose certificates the
  # openssl command makes
  rabbitmq-server openssl
  # local Kafka cluster (contrib/kafka) and schema registry
  # (contrib/registry; curl asks it whether it answers)
  maven openjdk-17-jdk-headless curl
  # process and socket inspection in tests; network namespaces and
  # partitions of the fault suite (tests/faults)
  iproute2 procps iptables
)

die() {
  printf 'setup.sh: %s\n' "$*" >&2
  exit 1
}

# dpkg -s also succeeds for removed packages that left config files behind,
# so look at the status itself.
installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root to run '$*' and sudo is not installed"
  fi
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  die "this script is for Debian 12 (no dpkg-query/apt-get here)"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}"
  as_root apt-get update -qq || die "apt-get update failed"
  # Through env because sudo drops the caller's environment; wait a bounded
  # time for a dpkg lock held by another apt run.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed"
  for pkg in "${missing[@]}"; do
    installed "$pkg" || die "$pkg is still not installed after apt-get install"
  done
fi

# Prints the prefix; builds only the first time (about a minute).
"$REPO_ROOT/scripts/librdkafka.sh" >/dev/null ||
  die "building librdkafka failed (see the messages above)"

# Prints the include directory; downloads and unpacks only the first time.
"$REPO_ROOT/scripts/valijson.sh" >/dev/null ||
  die "fetching the valijson headers failed (see the messages above)"

# Prints nothing if the jars are already cached, progress if it fetches.
"$REPO_ROOT/contrib/kafka/cluster.sh" fetch --quiet ||
  die "fetching the Kafka jars failed (see the messages above)"

# Prints nothing if the registry is built and current, progress if it builds.
"$REPO_ROOT/contrib/registry/registry.sh" fetch --quiet ||
  die "building the schema registry failed (see the messages above)"

# Each prints its venv's path; installs only the first time or when a pin
# changed.
for venv in celery contracts; do
  "$REPO_ROOT/scripts/test-venv.sh" "$venv" >/dev/null ||
    die "setting up the $venv venv failed (see the messages above)"
done

installed_now=""
((${#missing[@]} == 0)) || installed_now=" (${#missing[@]} installed now)"
echo "setup.sh: ok: ${#PACKAGES[@]} Debian packages present$installed_now, librdkafka 2.8.0 built, valijson headers unpacked, Kafka jars cached, schema registry built, test venvs ready"
