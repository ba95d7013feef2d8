"""The bridge (rabbit.upstream): hopper consumes a real RabbitMQ node and
moves its messages into Kafka, acking upstream only once Kafka persisted
each record.

One private rabbitmq-server node for the module (tests/bench/rabbitmq.sh, a
plain process on AMQP port 5872, TLS port 5873, epmd 4479, node
hopperbridge@localhost), with a TLS listener whose CA and certificate the
fixture makes with openssl. The 3-node Kafka cluster is the usual one.
"""

import decimal
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from pikautil import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))
import amqpprops  # noqa: E402

pytestmark = pytest.mark.bridge

REPO = Path(__file__).resolve().parents[2]
RABBITMQ_SH = REPO / "tests" / "bench" / "rabbitmq.sh"
AMQP_PORT = int(os.environ.get("HOPPER_BRIDGE_RABBIT_PORT", "5872"))
TLS_PORT = AMQP_PORT + 1
EPMD_PORT = int(os.environ.get("HOPPER_BRIDGE_RABBIT_EPMD", "4479"))
NODE = "hopperbridge@localhost"


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hopper test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    os.chmod(d / "server.key", 0o644)


class RabbitNode:
    def __init__(self, base):
        self.base = Path(base)
        certs = self.base / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        make_certs(certs)
        self.ca = certs / "ca.pem"
        self.env = dict(os.environ)
        self.env.update(
            BENCH_RABBIT_PORT=str(AMQP_PORT),
            BENCH_RABBIT_DIR=str(self.base / "node"),
            BENCH_RABBIT_NODE=NODE,
            BENCH_RABBIT_EPMD=str(EPMD_PORT),
            BENCH_RABBIT_DIST_PORT=str(AMQP_PORT + 20000),
            BENCH_RABBIT_TIMEOUT="120",
            BENCH_RABBIT_CONF_EXTRA="\n".join([
                "listeners.ssl.default = 127.0.0.1:%d" % TLS_PORT,
                "ssl_options.cacertfile = %s" % self.ca,
                "ssl_options.certfile = %s" % (certs / "server.pem"),
                "ssl_options.keyfile = %s" % (certs / "server.key"),
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]),
        )

    def url(self, tls=False):
        if tls:
            return "amqps://guest:guest@127.0.0.1:%d/%%2F" % TLS_PORT
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % AMQP_PORT

    def script(self, cmd, timeout=300):
        return subprocess.run([str(RABBITMQ_SH), cmd], env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def queue(self, name):
        """(messages_ready, messages_unacknowledged, consumers) of a queue, or None."""
        env = dict(self.env, HOME=str(self.base / "node"), ERL_EPMD_PORT=str(EPMD_PORT))
        r = subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", NODE, "-q", "list_queues", "name", "messages_ready",
             "messages_unacknowledged", "consumers", "--no-table-headers"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        for line in r.stdout.splitlines():
            parts = line.split("\t")
            if parts[0] == name:
                return tuple(int(x) for x in parts[1:4])
        return None

    def ctl(self, *args):
        env = dict(self.env, HOME=str(self.base / "node"), ERL_EPMD_PORT=str(EPMD_PORT))
        r = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", NODE, "-q", *args], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    def wait_queue(self, name, want, timeout=30.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.queue(name)
            if got is not None and all(w is None or g == w for g, w in zip(got, want)):
                return got
            time.sleep(0.3)
        raise AssertionError("queue %s: %r, wanted %r" % (name, got, want))


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    node = RabbitNode(tmp_path_factory.mktemp("bridge-rabbitmq"))
    r = node.script("start")
    if r.returncode != 0:
        node.script("stop", timeout=120)
        if not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
            pytest.skip("rabbitmq-server is not installed:\n" + r.stdout[-2000:])
        pytest.fail("rabbitmq-server did not start:\n" + r.stdout[-3000:], pytrace=False)
    yield node
    node.script("stop", timeout=120)


def upstream(name, url, **kw):
    u = {"name": name, "nodes": [url], "reconnect_min": 100, "reconnect_max": 1000}
    u.update(kw)
    return u


def start_bridge(hopper_factory, *ups, env=None):
    return hopper_factory({"rabbit": {"enabled": True, "upstream": list(ups)}}, env=env)


def declare_queue(rabbit, name, **kw):
    with connect(rabbit.url()) as conn:
        conn.channel().queue_declare(name, durable=True, **kw)


def publish(url, exchange, routing_key, bodies, props=None, confirm=True):
    with connect(url) as conn:
        ch = conn.channel()
        if confirm:
            ch.confirm_delivery()
        for b in bodies:
            ch.basic_publish(exchange, routing_key, b, props or pika.BasicProperties(delivery_mode=2))


def wait_log(h, pattern, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, h.log_text()):
            return
        time.sleep(0.1)
    raise AssertionError("no log line matching %r\n%s" % (pattern, h.log_tail()))


def test_drain_moves_every_message_and_acks_only_what_kafka_has(rabbit, hopper_factory, kafka, uid):
    q = "drain-" + uid
    n = 300
    declare_queue(rabbit, q)
    bodies = [b"m%d" % i for i in range(n)]
    publish(rabbit.url(), "", q, bodies)
    h = start_bridge(hopper_factory, upstream("d" + uid, rabbit.url(), queue=q, prefetch=50))
    # The default exchange routes by routing key: topic = the queue's name.
    recs = kafka.read_exactly(q, n, timeout=60)
    assert sorted(r.value for r in recs) == sorted(bodies)
    assert all(r.header("amqp.exchange") == "" and r.header("amqp.routing_key") == q for r in recs)
    assert all(r.header("amqp.redelivered") is None for r in recs)
    # Every message acked, none left, hopper still its consumer.
    rabbit.wait_queue(q, (0, 0, 1))
    assert "rejected" not in h.log_text()


def test_tap_copies_while_the_existing_consumer_keeps_everything(rabbit, hopper_factory, kafka, uid):
    x, app = "tapx-" + uid, "app-" + uid
    with connect(rabbit.url()) as conn:
        ch = conn.channel()
        ch.exchange_declare(x, "topic", durable=True)
        ch.queue_declare(app, durable=True)
        ch.queue_bind(app, x, "#")
    h = start_bridge(hopper_factory, upstream(
        "t" + uid, rabbit.url(), tap=[{"exchange": x, "routing_key": "orders.#"}]))
    wait_log(h, r"consuming queue 'hopper\.tap\.t%s'" % uid)
    n = 100
    bodies = [b"t%d" % i for i in range(n)]
    publish(rabbit.url(), x, "orders.eu", bodies)
    publish(rabbit.url(), x, "other.key", [b"not-tapped"])
    # hopper's default route: exchange X goes to topic X.
    recs = kafka.read_exactly(x, n, timeout=60)
    assert sorted(r.value for r in recs) == sorted(bodies)
    assert all(r.header("amqp.routing_key") == "orders.eu" and r.header("amqp.exchange") == x for r in recs)
    # The application's queue still has every message, the tapped ones and the other.
    rabbit.wait_queue(app, (n + 1, 0, 0))
    rabbit.wait_queue("hopper.tap.t" + uid, (0, 0, 1))


def test_properties_and_headers_as_a_direct_publish_and_redelivered_flag(rabbit, hopper_factory, kafka, uid):
    q = "props-" + uid
    declare_queue(rabbit, q)
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8", delivery_mode=2, priority=3,
        correlation_id="corr-1", reply_to="replies", expiration="600000", message_id="mid-" + uid,
        timestamp=1700000000, type="order", app_id="shop",
        headers={"s": "text", "i": 42, "neg": -7, "f": decimal.Decimal("1.5"), "b": True, "nested": {"a": [1, "two", {"x": None}]},
                 "list": [1, 2, 3]},
    )
    body = b'{"order": 1}'
    # First delivery to another consumer, which gives it back: RabbitMQ sets redelivered.
    publish(rabbit.url(), "", q, [body], props)
    with connect(rabbit.url()) as conn:
        ch = conn.channel()
        for method, _, got in ch.consume(q, inactivity_timeout=10):
            assert got == body
            ch.basic_nack(method.delivery_tag, requeue=True)
            break
        ch.cancel()
    h = start_bridge(hopper_factory, upstream("p" + uid, rabbit.url(), queue=q))
    [bridged] = kafka.read_exactly(q, 1, timeout=60)
    # The same message published straight to hopper.
    direct_topic = "direct-" + uid
    publish(h.url, "", direct_topic, [body], props)
    [direct] = kafka.read_exactly(direct_topic, 1, timeout=60)
    assert bridged.value == direct.value == body
    raw_b, raw_d = bridged.headers["amqp.properties"], direct.headers["amqp.properties"]
    assert amqpprops.decode_properties(raw_b) == amqpprops.decode_properties(raw_d)
    assert raw_b == raw_d
    skip = {"amqp.routing_key", "amqp.redelivered"}
    assert [(k, v) for k, v in bridged.header_list if k not in skip] == \
        [(k, v) for k, v in direct.header_list if k not in skip]
    assert bridged.header("amqp.redelivered") == "true"
    assert direct.header("amqp.redelivered") is None
    rabbit.wait_queue(q, (0, 0, 1))


def test_unroutable_and_refused_deliveries_are_dead_lettered_upstream(rabbit, hopper_factory, kafka, uid):
    """No route matches, or the route's topic may not be created: nack
    requeue=false, so RabbitMQ dead-letters them (never acked and dropped,
    never requeued for ever)."""
    q, dlq, routed = "dl-" + uid, "dlq-" + uid, "ok-" + uid
    with connect(rabbit.url()) as conn:
        ch = conn.channel()
        ch.queue_declare(dlq, durable=True)
        ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": "",
                                                      "x-dead-letter-routing-key": dlq})
    kafka.create_topic(routed)
    x, y = "x-" + uid, "y-" + uid
    # x: only its route (default route off); y: the default route, to a
    # topic that does not exist and may not be created.
    h = hopper_factory({"exchanges": [{"name": x, "type": "direct", "vhost": "/", "default_route": False}],
                        "routes": [{"exchange": x, "routing_key": "good", "topic": routed}],
                        "kafka": {"auto_create_topics": False},
                        "rabbit": {"enabled": True, "upstream": [upstream("dl" + uid, rabbit.url(), queue=q)]}})
    with connect(rabbit.url()) as conn:
        ch = conn.channel()
        for name in (x, y):
            ch.exchange_declare(name, "direct")
        for key in ("good", "nowhere"):
            ch.queue_bind(q, x, key)
        ch.queue_bind(q, y, "any")
    publish(rabbit.url(), x, "good", [b"g1", b"g2"])
    publish(rabbit.url(), y, "any", [b"m1"])
    publish(rabbit.url(), x, "nowhere", [b"n1"])
    recs = kafka.read_exactly(routed, 2, timeout=30)
    assert sorted(r.value for r in recs) == [b"g1", b"g2"]
    rabbit.wait_queue(dlq, (2, 0, 0))
    rabbit.wait_queue(q, (0, 0, 1))
    wait_log(h, r"no route for exchange 'x-%s' routing key 'nowhere'" % uid)
    wait_log(h, r"unroutable: topic y-%s does not exist" % uid)
    assert not kafka.topic_exists(y)


def test_channel_closed_upstream_is_retried_with_backoff_then_recovers(rabbit, hopper_factory, kafka, uid):
    q = "late-" + uid
    h = start_bridge(hopper_factory, upstream("l" + uid, rabbit.url(), queue=q))
    time.sleep(4)
    closes = re.findall(r"closed the channel: 404", h.log_text())
    # reconnect_min 100 ms doubling to 1 s: a handful of attempts in 4 s, not a busy loop.
    assert 2 <= len(closes) <= 12, h.log_tail()
    declare_queue(rabbit, q)
    publish(rabbit.url(), "", q, [b"late"])
    [rec] = kafka.read_exactly(q, 1, timeout=30)
    assert rec.value == b"late"
    rabbit.wait_queue(q, (0, 0, 1))
    assert h.alive()


def test_connection_closed_by_the_broker_reconnects(rabbit, hopper_factory, kafka, uid):
    q = "reconn-" + uid
    declare_queue(rabbit, q)
    h = start_bridge(hopper_factory, upstream("r" + uid, rabbit.url(), queue=q))
    wait_log(h, r"consuming queue '%s'" % q)
    rabbit.ctl("close_all_connections", "bridge test")
    wait_log(h, r"the broker closed the connection: 320")
    publish(rabbit.url(), "", q, [b"after"])
    [rec] = kafka.read_exactly(q, 1, timeout=30)
    assert rec.value == b"after"
    assert len(re.findall(r"consuming queue '%s'" % q, h.log_text())) == 2
    rabbit.wait_queue(q, (0, 0, 1))


def test_heartbeats_keep_an_idle_connection(rabbit, hopper_factory, kafka, uid):
    """heartbeat 1 s: both sides would close after two silent intervals;
    idle for 4 s, the connection stays and still moves messages."""
    q = "hb-" + uid
    declare_queue(rabbit, q)
    h = start_bridge(hopper_factory, upstream("h" + uid, rabbit.url(), queue=q, heartbeat=1))
    wait_log(h, r"consuming queue '%s' \(prefetch 1000, heartbeat 1 s\)" % q)
    time.sleep(4)
    publish(rabbit.url(), "", q, [b"still-here"])
    [rec] = kafka.read_exactly(q, 1, timeout=30)
    assert rec.value == b"still-here"
    log = h.log_text()
    assert len(re.findall(r"consuming queue '%s'" % q, log)) == 1, h.log_tail()
    assert "next attempt" not in log


def test_kafka_failure_nacks_and_requeues_nothing_lost(rabbit, hopper_factory, kafka, uid):
    q = "fatal-" + uid
    n = 2000
    declare_queue(rabbit, q)
    bodies = [b"f%d" % i for i in range(n)]
    publish(rabbit.url(), "", q, bodies)
    h = start_bridge(hopper_factory, upstream("f" + uid, rabbit.url(), queue=q, prefetch=500),
                     env={"HOPPER_TEST_HOOKS": "1"})
    deadline = time.monotonic() + 30
    while kafka.count(q) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    h.signal(signal.SIGUSR2)
    wait_log(h, "fatal error")
    rabbit.wait_queue(q, (0, 0, 1), timeout=60)
    recs = kafka.read_exactly(q, kafka.count(q), timeout=30)
    assert set(bodies) <= {r.value for r in recs}, "lost: %d" % len(set(bodies) - {r.value for r in recs})


def test_sigterm_acks_what_persisted_and_leaves_the_rest_queued(rabbit, hopper_factory, kafka, uid):
    q = "term-" + uid
    n = 2000
    declare_queue(rabbit, q)
    bodies = [b"s%d" % i for i in range(n)]
    publish(rabbit.url(), "", q, bodies)
    h = start_bridge(hopper_factory, upstream("s" + uid, rabbit.url(), queue=q, prefetch=200))
    deadline = time.monotonic() + 30
    while kafka.count(q) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.stop() == 0
    ready, unacked, consumers = rabbit.wait_queue(q, (None, 0, 0))
    in_kafka = {r.value for r in kafka.read_exactly(q, kafka.count(q), timeout=30)}
    # Everything is in Kafka or still queued; what hopper acked is in Kafka.
    assert len(in_kafka) + ready >= n
    assert len(in_kafka) >= n - ready
    with connect(rabbit.url()) as conn:
        ch = conn.channel()
        left = set()
        for method, _, body in ch.consume(q, inactivity_timeout=1):
            if method is None:
                break
            left.add(body)
            ch.basic_ack(method.delivery_tag)
        ch.cancel()
    assert in_kafka | left == set(bodies)


def test_tls_upstream(rabbit, hopper_factory, kafka, uid):
    q = "tls-" + uid
    declare_queue(rabbit, q)
    publish(rabbit.url(), "", q, [b"over-tls"])
    h = start_bridge(hopper_factory, upstream("s" + uid, rabbit.url(tls=True), queue=q,
                                              tls={"ca_file": str(rabbit.ca)}))
    [rec] = kafka.read_exactly(q, 1, timeout=30)
    assert rec.value == b"over-tls"
    rabbit.wait_queue(q, (0, 0, 1))
    assert "TLS" not in h.log_text()


def test_tls_refuses_an_unknown_ca(rabbit, hopper_factory, uid):
    q = "tlsbad-" + uid
    declare_queue(rabbit, q)
    h = start_bridge(hopper_factory, upstream("b" + uid, rabbit.url(tls=True), queue=q))
    wait_log(h, r"TLS: certificate verify failed")
    assert rabbit.queue(q)[2] == 0


def test_bridge_is_off_without_the_rabbit_side(hopper_factory, uid):
    h = hopper_factory({"rabbit": {"enabled": False, "upstream": [
        upstream("o" + uid, "amqp://guest:guest@127.0.0.1:1/", queue="q")]}})
    wait_log(h, "the bridge is off")


def test_config_check_positions_upstream_errors(tmp_path):
    from hopperproc import hopper_bin
    good = tmp_path / "good.yaml"
    good.write_text("rabbit:\n  enabled: true\n  upstream:\n    - name: a\n"
                    "      nodes: [amqp://guest:guest@127.0.0.1:5672/%2F]\n      queue: q\n")
    r = subprocess.run([hopper_bin(), "-t", "-c", str(good)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("rabbit:\n  upstream:\n    - name: a\n      nodes: [amqp://h/]\n      queue: q\n"
                   "      tap: [{exchange: x}]\n")
    r = subprocess.run([hopper_bin(), "-t", "-c", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "bad.yaml:6:7: rabbit.upstream[0].tap: cannot go with queue" in r.stderr
