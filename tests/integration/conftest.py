"""Fixtures for hopper's integration tests: the Kafka cluster, hopper itself,
a Kafka reader. See README.md in this directory."""

import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hopperproc import (  # noqa: E402
    DEFAULT_BOOTSTRAP,
    TIMEOUT_SCALE,
    Hopper,
    HopperFailed,
    cluster,
    ensure_cluster,
    hopper_bin,
    under_valgrind,
)
from kafkaread import KafkaReader  # noqa: E402


# No test may hang the suite: a publish whose confirm never comes blocks
# pika forever, so every test body runs under an alarm.
DEFAULT_DEADLINE = 120


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes tens of seconds (stops the Kafka cluster); still in the default run")
    config.addinivalue_line("markers", "deadline(seconds): fail the test if its body runs longer (default %d)" % DEFAULT_DEADLINE)
    config.addinivalue_line("markers", "reference: runs against RabbitMQ, not hopper (test_celery.py's reference runs; -m 'not reference' leaves them out)")
    config.addinivalue_line("markers", "celery: runs real Celery workers (test_celery.py); -m 'not celery' leaves them out")
    config.addinivalue_line("markers", "contracts: message contracts against a schema registry of its own (test_contracts.py); -m 'not contracts' leaves them out")
    config.addinivalue_line("markers", "topicrule: which topics a publish may create (test_topic_rule.py)")
    config.addinivalue_line("markers", "bridge: the RabbitMQ-to-Kafka bridge against a private RabbitMQ node (test_bridge.py); -m 'not bridge' leaves them out")
    config.addinivalue_line("markers", "stack: tests the local stack or a part of it (test_registry_stack.py, test_stack.py); -m 'not stack' leaves them out")
    # kombu 5.2 on Python 3.11; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:SelectableGroups dict interface is deprecated:DeprecationWarning")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("deadline")
    seconds = int((int(marker.args[0]) if marker else DEFAULT_DEADLINE) * TIMEOUT_SCALE)

    def expired(signum, frame):
        raise TimeoutError("test still running after its %d s deadline" % seconds)

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_collection_modifyitems(config, items):
    # Slow tests (the outage one stops the whole cluster) run last, so a
    # cluster that comes back slowly cannot disturb the quick ones.
    items.sort(key=lambda item: 1 if item.get_closest_marker("slow") else 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the log tail of every hopper the test started."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for h in getattr(item, "hoppers", []):
            rep.sections.append(("hopper log %s" % h.log_path.name, h.log_tail(80)))


@pytest.fixture(scope="session")
def kafka_cluster():
    """The local 3-node cluster, started if needed; yields the bootstrap list."""
    if not os.access(hopper_bin(), os.X_OK):
        pytest.fail("hopper binary %s missing: run make (or set HOPPER_BIN)" % hopper_bin(), pytrace=False)
    ensure_cluster()
    r = cluster("bootstrap", timeout=30)
    bootstrap = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else DEFAULT_BOOTSTRAP
    return bootstrap


@pytest.fixture
def kafka(kafka_cluster):
    return KafkaReader(kafka_cluster)


@pytest.fixture
def uid():
    """A short unique suffix for names, so tests re-run against the same cluster."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def hopper_factory(request, kafka_cluster, tmp_path):
    """start(config_overrides=None, env=None) -> a running Hopper.

    At teardown every hopper gets SIGTERM and must exit 0 within 15 s, and
    its log must hold no sanitizer report (for SANITIZE=... builds) and,
    under HOPPER_WRAPPER=valgrind..., a clean valgrind summary."""
    started = []
    request.node.hoppers = started

    def start(config_overrides=None, env=None):
        h = Hopper(
            tmp_path / ("hopper%d" % len(started)),
            kafka_cluster,
            config_overrides=config_overrides,
            env=env,
        )
        started.append(h)
        h.start()
        return h

    yield start

    problems = []
    for h in reversed(started):
        if h.proc is None:
            continue
        try:
            code = h.stop()
        except HopperFailed as e:
            problems.append(str(e))
            continue
        if code != 0:
            problems.append("hopper exited with %s after SIGTERM, expected 0\n%s" % (code, h.log_tail()))
        report = h.sanitizer_report()
        if report:
            problems.append("sanitizer report in %s:\n%s" % (h.log_path, report))
        if under_valgrind():
            report = h.valgrind_report()
            if report:
                problems.append("valgrind report in %s:\n%s" % (h.log_path, report))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def hopper(hopper_factory):
    """hopper with the shipped config's structure (exchange events -> events-topic)."""
    return hopper_factory()
