"""The stack's RabbitMQ profile (`make run ARGS=--enable-rabbit`, that is
contrib/stack.sh run --enable-rabbit), end to end on private ports.

contrib/stack.sh runs as `make run` runs it, with the test's ports and
directories in its environment: its own schema registry and RabbitMQ node
(free ports, data in the test's tmp dir) and hopper on a free port with the
generated config; the Kafka cluster is the suite's (STACK_EXTERNAL=kafka:
the stack neither starts nor stops it). One message published to the
node's amq.topic must reach the Kafka topic amq.topic through hopper's tap,
`status` must report every part up, and `stop` must stop hopper, the node
and the registry. About 30 s, most of it the registry's and the node's
start."""

import os
import subprocess
import time
import uuid

import pika
import pytest

from hopperproc import REPO, free_port, hopper_bin
from pikautil import connect

pytestmark = pytest.mark.stack

STACK_SH = REPO / "contrib" / "stack.sh"
RABBIT_SH = REPO / "contrib" / "rabbitmq" / "rabbitmq.sh"
TAP_QUEUE = "hopper.tap.stack"
TAP_TOPIC = "amq.topic"


def script(cmd, env, *args, timeout=180):
    return subprocess.run([str(cmd), *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def wait_tap_consumer(url, deadline):
    """Until hopper consumes its tap queue on the node (a message published
    before the queue is bound would go nowhere)."""
    last = None
    while time.monotonic() < deadline:
        try:
            with connect(url) as conn:
                ok = conn.channel().queue_declare(TAP_QUEUE, passive=True)
                if ok.method.consumer_count >= 1:
                    return
                last = "no consumer yet"
        except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.AMQPConnectionError) as e:
            last = repr(e)
        time.sleep(0.3)
    raise AssertionError("hopper never consumed %s: %s" % (TAP_QUEUE, last))


@pytest.mark.deadline(150)
def test_rabbit_profile_taps_amq_topic_into_kafka(kafka, tmp_path):
    if not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
        pytest.skip("rabbitmq-server is not installed (contrib/rabbitmq/rabbitmq.sh installs it with apt-get)")
    hopper_port = free_port()
    rabbit_port = free_port()
    env = dict(os.environ)
    env.update(
        HOPPER_BIN=hopper_bin(),
        STACK_DIR=str(tmp_path / "stack"),
        STACK_EXTERNAL="kafka",
        HOPPER_PORT=str(hopper_port),
        REGISTRY_PORT=str(free_port()),
        REGISTRY_DATA=str(tmp_path / "registry"),
        RABBIT_PORT=str(rabbit_port),
        RABBIT_EPMD=str(free_port()),
        RABBIT_DIST_PORT=str(free_port()),
        RABBIT_NODE="hopperstacktest@localhost",
    )
    rabbit_url = "amqp://guest:guest@127.0.0.1:%d/%%2F" % rabbit_port
    log_path = tmp_path / "stack-run.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        run = subprocess.Popen([str(STACK_SH), "run", "--enable-rabbit"], env=env, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 100
        while True:
            code = run.poll()
            assert code is None, "stack.sh run exited %s:\n%s" % (code, log_path.read_text()[-4000:])
            if (tmp_path / "stack" / "hopper.pid").exists():
                break
            assert time.monotonic() < deadline, "stack.sh run did not start hopper:\n" + log_path.read_text()[-4000:]
            time.sleep(0.3)
        up = time.monotonic() - started
        config = (tmp_path / "stack" / "hopper-rabbit.yaml").read_text()
        assert "port: %d" % hopper_port in config and rabbit_url in config, config

        wait_tap_consumer(rabbit_url, time.monotonic() + 30)
        start = kafka.end_offsets(TAP_TOPIC)
        body = ("stack-%s" % uuid.uuid4().hex).encode()
        key = "stack.test." + uuid.uuid4().hex[:8]
        with connect(rabbit_url) as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish("amq.topic", key, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        recs = kafka.read_exactly(TAP_TOPIC, 1, start=start, timeout=20, match=lambda r: r.value == body)
        assert recs[0].header("amqp.exchange") == "amq.topic", recs[0]
        assert recs[0].header("amqp.routing_key") == key, recs[0]

        # hopper's listener may come a moment after its tap.
        deadline = time.monotonic() + 20
        while True:
            r = script(STACK_SH, env, "status", timeout=60)
            if r.returncode == 0 or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        assert r.returncode == 0, r.stdout
        for part in ("node 1: running", "node 2: running", "node 3: running", "registry: running",
                     "rabbitmq: running", "hopper: running"):
            assert part in r.stdout, r.stdout
        assert "127.0.0.1:%d" % rabbit_port in r.stdout and "127.0.0.1:%d" % hopper_port in r.stdout, r.stdout

        r = script(STACK_SH, env, "stop", timeout=120)
        assert r.returncode == 0, r.stdout
        assert run.wait(timeout=30) == 0, log_path.read_text()[-4000:]
        r = script(RABBIT_SH, env, "status", timeout=60)
        assert r.returncode != 0 and "rabbitmq: stopped" in r.stdout, r.stdout
        r = script(STACK_SH, env, "status", timeout=60)
        # Kafka is the suite's and still runs; the registry is down, the
        # node has left the stack, hopper is stopped.
        assert r.returncode != 0, r.stdout
        assert "node 1: running" in r.stdout and "registry: stopped" in r.stdout, r.stdout
        assert "rabbitmq: not in the stack" in r.stdout and "hopper: stopped" in r.stdout, r.stdout
        print("profile up in %.1f s, whole test %.1f s" % (up, time.monotonic() - started))
    finally:
        if run.poll() is None or (tmp_path / "stack" / "rabbit.profile").exists():
            script(STACK_SH, env, "stop", timeout=120)
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
