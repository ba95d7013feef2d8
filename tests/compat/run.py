"""run.py - the compat runner behind `make compat` (see README.md here).

Starts (or reuses) the local 3-node Kafka cluster, one hopper on a free port
with a generated config and task queues on (--enable-rabbit), and a real
RabbitMQ (Debian's rabbitmq-server) on its own ports and data folder;
installs each client library at its pinned version into .cache/compat; runs
every client's scenario program against both servers (the program consumes
its queue on each); reads back from Kafka what hopper wrote and checks it
against README.md's record-format contract, and that the queue's consumer
group committed every record; compares the props message as each server
delivered it with what hopper archived; runs the client test suites
(suites.py); writes MATRIX.md. Every wait has a deadline. Exit status 0 only if every client
passed every step on hopper, every record was right and every failure of a
client suite is classified.

    /usr/bin/python3 tests/compat/run.py [--clients pika,go] [--no-suites]
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))

import amqpprops  # noqa: E402
import clients as clientlib  # noqa: E402
import matrix  # noqa: E402
import suites as suitelib  # noqa: E402
from hopperproc import Hopper, cluster, free_port  # noqa: E402

SPEC = json.loads(clientlib.SPEC.read_text())
PROGRAM_TIMEOUT = 180  # one scenario program, whole run
WAIT_TIMEOUT = 30  # each wait inside a program (COMPAT_TIMEOUT)
KAFKA_TIMEOUT = 60

T0 = time.monotonic()


def log(msg):
    print("[compat %5.0fs] %s" % (time.monotonic() - T0, msg), flush=True)


# ---- RabbitMQ ---------------------------------------------------------------------


class RabbitMQ:
    """Debian's rabbitmq-server as a plain process: own node name, ports,
    data, logs and Erlang cookie under `base`; loopback only."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self, base):
        self.base = Path(base)
        self.port = free_port()
        self.dist_port = free_port()
        self.nodename = "hopper-compat-%d@localhost" % os.getpid()
        self.proc = None

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % self.port

    def start(self, timeout=120):
        shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "home").mkdir(parents=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        env = dict(os.environ)
        env.update(
            HOME=str(self.base / "home"),  # its own .erlang.cookie
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.base / "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self.log_path = self.base / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.SERVER], cwd=self.base, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited with %d:\n%s" % (self.proc.returncode, self.tail()))
            if "Starting broker... completed" in self.log_path.read_text(errors="replace"):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.5)
        raise RuntimeError("rabbitmq-server not ready after %ds:\n%s" % (timeout, self.tail()))

    def tail(self, n=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def version(self):
        return clientlib.dpkg_version("rabbitmq-server") or "?"

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        # Its own process group: the script, beam.smp and erl_child_setup.
        # epmd is shared with other nodes and left alone.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


# ---- scenario programs ----------------------------------------------------------------


STEP_RE = re.compile(r"^STEP (\S+) (ok|FAIL)\s?(.*)$")
# The consume step's props message, its properties as the client decoded
# them, as JSON (tests/compat/README.md).
DELIVERED_RE = re.compile(r"^DELIVERED (\{.*\})$")


def parse_detail(text):
    """'a=1 b="x y" c=z' -> {a: '1', b: 'x y', c: 'z'}; free text under ''."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', text):
        v = m.group(2)
        out[m.group(1)] = v[1:-1] if v.startswith('"') else v
    return out


class Result:
    """What one scenario program printed against one server."""

    def __init__(self, client, target):
        self.client, self.target = client, target
        self.steps = {}  # name -> (ok, detail text, detail dict)
        self.delivered = None  # the props message's properties as consumed (DELIVERED line)
        self.exit_code = None
        self.error = None  # install failure, timeout
        self.log_path = None
        self.seconds = 0.0

    def status(self, step):
        if step in self.steps:
            return "ok" if self.steps[step][0] else "FAIL"
        return "—" if self.error is None and self.exit_code == 0 else "not run"


def run_program(ctx, client, target, url, port, run_id, logdir):
    res = Result(client, target)
    env = dict(os.environ)
    env.update(getattr(client, "env", lambda c: {})(ctx))
    env.update(
        COMPAT_CLIENT=client.name.replace("-", ""),
        COMPAT_RUN=run_id,
        COMPAT_URL=url,
        COMPAT_HOST="127.0.0.1",
        COMPAT_PORT=str(port),
        COMPAT_TARGET=target,
        COMPAT_SPEC=str(clientlib.SPEC),
        COMPAT_TIMEOUT=str(WAIT_TIMEOUT),
    )
    res.log_path = logdir / ("%s.%s.log" % (client.name, target))
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            [str(c) for c in client.command(ctx)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=PROGRAM_TIMEOUT, text=True, errors="replace",
        )
        out, res.exit_code = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        res.error = "timed out after %ds" % PROGRAM_TIMEOUT
    res.seconds = time.monotonic() - t0
    res.log_path.write_text(out)
    for line in out.splitlines():
        m = STEP_RE.match(line.strip())
        if m:
            res.steps[m.group(1)] = (m.group(2) == "ok", m.group(3), parse_detail(m.group(3)))
        m = DELIVERED_RE.match(line.strip())
        if m:
            try:
                res.delivered = json.loads(m.group(1))
            except ValueError as e:
                res.delivered = {"__undecodable__": "%s: %s" % (e, m.group(1)[:200])}
    if res.error is None and res.exit_code != 0 and not any(not s[0] for s in res.steps.values()):
        res.error = "exit code %d: %s" % (res.exit_code, out.strip().splitlines()[-1][:300] if out.strip() else "")
    return res


# ---- Kafka: what hopper wrote -----------------------------------------------------------


def big_body():
    return bytes(i % 251 for i in range(SPEC["big_size"]))


def expected_props(client_name, run_id):
    p = SPEC["props"]
    out = {}
    for k, v in p.items():
        if isinstance(v, str) and "%s" in v:
            v = v % (client_name if k == "app_id" else run_id)
        out[k] = v
    return out


class Check:
    def __init__(self, name):
        self.name = name
        self.problems = []
        self.note = ""

    def fail(self, msg):
        self.problems.append(msg)

    @property
    def ok(self):
        return not self.problems

    def cell(self):
        if self.ok:
            return "ok" + (" (%s)" % self.note if self.note else "")
        return "FAIL: " + "; ".join(self.problems[:3]) + (" (+%d more)" % (len(self.problems) - 3) if len(self.problems) > 3 else "")


def header_diff(got, want):
    if got == want:
        return None
    gn, wn = [n for n, _ in got], [n for n, _ in want]
    if gn != wn:
        return "header names %s, expected %s" % (gn, wn)
    for (n, g), (_, w) in zip(got, want):
        if g != w:
            return "header %s=%r, expected %r" % (n, g[:120], w[:120])
    return "headers differ"


def check_kafka(reader, client, run_id, noroute_before):
    """Checks of what hopper wrote for one client's run; dict name -> Check."""
    name = client.name.replace("-", "")
    exchange = "compat.%s.%s" % (name, run_id)
    checks = {k: Check(k) for k in ("publish", "big", "props", "unroutable")}
    n = SPEC["count"]
    try:
        # Confirmed means persisted: when the program has finished, every
        # acked record is in the topic already, so read what is there.
        total = reader.count(exchange)
        records = reader.read(exchange, total, timeout=KAFKA_TIMEOUT) if total else []
    except Exception as e:  # noqa: BLE001
        for c in checks.values():
            c.fail("reading %s: %s" % (exchange, e))
        return checks, {}
    by_key = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r)
    if total != len(records) or total != n + 2:
        checks["publish"].fail("topic %s holds %d records, read %d, expected %d" % (exchange, total, len(records), n + 2))

    # 1000 small messages
    c = checks["publish"]
    seen = {}
    default_props = set()
    for r in records:
        if r.key in (SPEC["big_key"].encode(), SPEC["props_key"].encode()):
            continue
        try:
            body = r.value.decode()
            rid, i = body.rsplit(":", 1)
            i = int(i)
        except Exception:  # noqa: BLE001
            c.fail("unexpected value %r" % r.value[:60])
            continue
        if rid != run_id or not 0 <= i < n:
            c.fail("unexpected value %r" % body)
            continue
        seen[i] = seen.get(i, 0) + 1
        rk = SPEC["routing_key"] % (i % 10)
        if r.key != rk.encode():
            c.fail("message %d: key %r, expected %r" % (i, r.key, rk))
        raw = r.headers.get("amqp.properties")
        if raw is None:
            c.fail("message %d: no amqp.properties header" % i)
            continue
        try:
            want, props = amqpprops.expected_headers(exchange, rk, raw)
        except ValueError as e:
            c.fail("message %d: amqp.properties undecodable: %s" % (i, e))
            continue
        default_props.add(",".join("%s=%s" % (k, amqpprops.to_plain(v)) for k, v in props) or "none")
        d = header_diff(r.header_list, want)
        if d:
            c.fail("message %d: %s" % (i, d))
    missing = [i for i in range(n) if i not in seen]
    dups = sum(v - 1 for v in seen.values())
    if missing:
        c.fail("%d of %d messages missing (first %s)" % (len(missing), n, missing[:5]))
    if dups:
        c.fail("%d duplicates" % dups)
    c.note = "%d records" % len(seen)

    # 1 MiB
    c = checks["big"]
    recs = by_key.get(SPEC["big_key"].encode(), [])
    if len(recs) != 1:
        c.fail("%d records with key %s, expected 1" % (len(recs), SPEC["big_key"]))
    else:
        r = recs[0]
        if r.value != big_body():
            c.fail("value: %d bytes, sha256 %s, expected %d bytes, sha256 %s" % (
                len(r.value or b""), hashlib.sha256(r.value or b"").hexdigest()[:12], SPEC["big_size"],
                hashlib.sha256(big_body()).hexdigest()[:12]))
        want, _ = amqpprops.expected_headers(exchange, SPEC["big_key"], r.headers.get("amqp.properties", b"\x00\x00"))
        d = header_diff(r.header_list, want)
        if d:
            c.fail(d)
        c.note = "%d bytes" % len(r.value or b"")

    # every property, nested headers
    c = checks["props"]
    recs = by_key.get(SPEC["props_key"].encode(), [])
    kafka_props = {}
    if len(recs) != 1:
        c.fail("%d records with key %s, expected 1" % (len(recs), SPEC["props_key"]))
    else:
        r = recs[0]
        if r.value != SPEC["props_body"].encode():
            c.fail("value %r" % r.value[:60])
        raw = r.headers.get("amqp.properties", b"\x00\x00")
        try:
            want, props = amqpprops.expected_headers(exchange, SPEC["props_key"], raw)
            d = header_diff(r.header_list, want)
            if d:
                c.fail(d)
            kafka_props = {k: amqpprops.to_plain(v) for k, v in props}
            expect = expected_props(name, run_id)
            expect["headers"] = SPEC["headers"]
            for k, v in expect.items():
                if kafka_props.get(k) != v:
                    c.fail("property %s=%r, expected %r" % (k, kafka_props.get(k), v))
            for k in kafka_props:
                if k not in expect:
                    c.fail("extra property %s=%r" % (k, kafka_props[k]))
        except ValueError as e:
            c.fail("amqp.properties undecodable: %s" % e)

    # the mandatory unroutable message must not be anywhere
    c = checks["unroutable"]
    try:
        # Compared with the count before this client ran: the topic should
        # not exist at all, but the cluster is shared and outlives runs.
        after = reader.count(SPEC["noroute_exchange"])
        if after != noroute_before:
            c.fail("topic %s grew from %d to %d records" % (SPEC["noroute_exchange"], noroute_before, after))
        if any(r.value == b"unroutable" for r in records):
            c.fail("the unroutable message is in %s" % exchange)
    except Exception as e:  # noqa: BLE001
        c.fail(str(e))
    checks["publish"].default_props = sorted(default_props)
    return checks, kafka_props


def check_celery_kafka(reader, client, result, start_offsets):
    c = Check("tasks")
    ids = []
    for s in ("publish",):
        if s in result.steps:
            ids += [x for x in result.steps[s][2].get("task_ids", "").split(",") if x]
    if not ids:
        c.fail("no task ids reported")
        return {"tasks": c}
    topic = "celery"
    want = set(ids)
    try:
        recs = reader.read(topic, len(want), start=start_offsets, timeout=KAFKA_TIMEOUT,
                           match=lambda r: r.header("id") in want)
    except Exception as e:  # noqa: BLE001
        c.fail("reading %s: %s" % (topic, e))
        return {"tasks": c}
    got = {}
    for r in recs:
        got.setdefault(r.header("id"), []).append(r)
    missing = want - set(got)
    if missing:
        c.fail("%d of %d tasks missing from topic %s" % (len(missing), len(want), topic))
    exchanges = set()
    for tid, rs in got.items():
        r = rs[0]
        if len(rs) > 1:
            c.fail("task %s: %d records" % (tid, len(rs)))
        if r.key != b"celery" or r.header("amqp.routing_key") != "celery":
            c.fail("task %s: key %r, routing key %r, expected celery" % (tid, r.key, r.header("amqp.routing_key")))
        exchange = r.header("amqp.exchange") or ""
        exchanges.add(exchange)
        want_h, _ = amqpprops.expected_headers(exchange, "celery", r.headers.get("amqp.properties", b"\x00\x00"))
        d = header_diff(r.header_list, want_h)
        if d:
            c.fail("task %s: %s" % (tid, d))
        if r.header("task") != "compat.add":
            c.fail("task %s: task header %r" % (tid, r.header("task")))
        try:
            args = json.loads(r.value)[0]
            if len(args) != 2:
                c.fail("task %s: args %r" % (tid, args))
        except Exception as e:  # noqa: BLE001
            c.fail("task %s: body not Celery protocol 2 JSON: %s" % (tid, e))
    c.note = "%d tasks on topic celery, exchange %s" % (len(got), "/".join(repr(x) for x in sorted(exchanges)))
    return {"tasks": c}


# ---- what each server delivered to the consume step ------------------------------------


def group_of(queue, vhost="/"):
    """The consumer group hopper reads a durable queue through (README: Task
    queues): vhost keeps [A-Za-z0-9_-], the queue also '.', others %XX."""
    keep = lambda s, extra: "".join(  # noqa: E731
        c if (c.isascii() and c.isalnum()) or c in "_-" + extra else "%%%02X" % ord(c) for c in s
    )
    return "hopper." + keep(vhost, "") + "." + keep(queue, ".")


def committed_check(reader, bootstrap, topic, queue):
    """Every record of the topic is committed by the queue's group: the
    consume step acked them all, and hopper commits acks (README: Ack ->
    commit). Committed offset per partition == the partition's end."""
    from confluent_kafka import Consumer, TopicPartition

    group = group_of(queue)
    c = Check("committed")
    try:
        ends = reader.end_offsets(topic)
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            got = {tp.partition: tp.offset for tp in cons.committed(
                [TopicPartition(topic, p) for p in sorted(ends)], timeout=KAFKA_TIMEOUT)}
        finally:
            cons.close()
        behind = {p: (got.get(p), end) for p, end in ends.items() if end > 0 and got.get(p) != end}
        if not ends:
            c.fail("topic %s not found" % topic)
        elif behind:
            c.fail("group %s: committed/end %s" % (group, ", ".join(
                "p%d %s/%d" % (p, o, e) for p, (o, e) in sorted(behind.items()))))
        c.note = "all %d partitions committed to the end" % len(ends)
    except Exception as e:  # noqa: BLE001
        c.fail("reading %s's offsets: %s" % (group, e))
    return c


def consumed(res, kprops):
    """What the consume step on one server saw, and whether the props message
    as that server delivered it equals what hopper archived in Kafka."""
    out = {"step": None, "props": res.delivered, "props_equal": None}
    if "consume" not in res.steps:
        out["error"] = res.error or "no consume step"
        return out
    ok, _, d = res.steps["consume"]
    out["step"] = d
    if res.delivered is not None and kprops:
        out["props_equal"] = res.delivered == kprops
        if not out["props_equal"]:
            out["props_diff"] = {
                k: (res.delivered.get(k), kprops.get(k))
                for k in sorted(set(kprops) | set(res.delivered)) if res.delivered.get(k) != kprops.get(k)
            }
    return out


def wait_kafka(bootstrap, timeout=180):
    """Wait (bounded) until every broker of the cluster answers metadata and
    a group coordinator answers an offset fetch: the cluster may be shared,
    another run may be restarting it, and on a new cluster the first group
    request creates __consumer_offsets. (hopper places a queue's group with
    librdkafka's ListConsumerGroupOffsets, which crashes on the
    NOT_COORDINATOR answer of a coordinator still loading: matrix.py
    HOPPER_BUGS. Until that is fixed the scenario starts on a cluster whose
    coordinators are up.)"""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient

    want = len(bootstrap.split(","))
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)
            if len(md.brokers) < want:
                last = "%d of %d brokers" % (len(md.brokers), want)
            else:
                # The consumer's own group path (FindCoordinator, then
                # OffsetFetch), which retries NOT_COORDINATOR safely.
                c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hopper-compat-warmup", "log_level": 0})
                try:
                    c.committed([TopicPartition("hopper-compat-warmup", 0)], timeout=10)
                    return True
                except KafkaException as e:
                    last = "group coordinator: %s" % e
                finally:
                    c.close()
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(2)
    log("Kafka not healthy after %ds: %s" % (timeout, last))
    return False


# ---- main --------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="", help="comma-separated subset of: " + ",".join(c.name for c in clientlib.ALL))
    ap.add_argument("--suites", default=None, help="comma-separated subset of: " + ",".join(s.name for s in suitelib.ALL))
    ap.add_argument("--no-suites", action="store_true")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "compat"))
    ap.add_argument("--out", default=str(HERE / "MATRIX.md"))
    ap.add_argument("--hopper", default=os.environ.get("HOPPER_BIN") or str(REPO / "build" / "hopper"))
    args = ap.parse_args()

    os.environ["HOPPER_BIN"] = args.hopper
    cache = Path(args.cache)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    logdir = cache / "logs" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    latest = cache / "logs" / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)
    ctx = clientlib.Ctx(cache, lambda m: log(m))
    wanted = [c for c in args.clients.split(",") if c]
    chosen = [cls() for cls in clientlib.ALL if not wanted or cls.name in wanted]
    unknown = set(wanted) - {c.name for c in chosen}
    if unknown:
        ap.error("unknown clients: %s" % ", ".join(sorted(unknown)))

    if not os.access(args.hopper, os.X_OK):
        sys.exit("compat: %s is missing: run make first" % args.hopper)
    log("installing what is missing (Debian rabbitmq-server, client libraries)")
    clientlib.ensure_debian(ctx, ["rabbitmq-server", "python3-confluent-kafka"])
    from kafkaread import KafkaReader

    log("Kafka cluster: contrib/kafka/cluster.sh start")
    r = cluster("start")
    if r.returncode != 0:
        sys.exit("compat: cluster.sh start failed:\n" + r.stdout[-3000:])
    # cluster.sh says where the cluster listens (KAFKA_BROKER_PORTS, KAFKA_HOST):
    # never guess the default ports, another run's cluster may be there.
    r = cluster("bootstrap", timeout=30)
    if r.returncode != 0 or not r.stdout.strip():
        sys.exit("compat: cluster.sh bootstrap failed:\n" + r.stdout[-3000:])
    bootstrap = r.stdout.strip().splitlines()[-1]
    log("Kafka bootstrap: %s" % bootstrap)
    reader = KafkaReader(bootstrap)

    installs = {}
    for c in chosen:
        t0 = time.monotonic()
        try:
            c.install(ctx)
            installs[c.name] = None
            log("installed %s %s (%.0fs)" % (c.name, c.version, time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001
            installs[c.name] = str(e)
            log("install of %s failed: %s" % (c.name, e))

    hopper = Hopper(
        cache / "hopper", bootstrap, args=["--enable-rabbit"],
        config_overrides={"exchanges": [
            {"name": "events", "type": "topic", "vhost": "/"},
            # The unroutable step: a mandatory publish here has no route.
            {"name": SPEC["noroute_exchange"], "type": "topic", "vhost": "/", "default_route": False},
        ]},
    )
    rabbit = RabbitMQ(cache / "rabbitmq")
    results = {}
    kafka_checks = {}
    consumed_by = {}  # client -> target -> consumed()
    suite_results = []
    try:
        log("starting hopper (%s) and RabbitMQ %s" % (args.hopper, rabbit.version()))
        hopper.start()
        rabbit.start()
        log("hopper on %d, RabbitMQ on %d (node %s)" % (hopper.port, rabbit.port, rabbit.nodename))
        celery_start = None
        for c in chosen:
            if installs[c.name] is not None:
                continue
            run_id = uuid.uuid4().hex[:10]
            wait_kafka(bootstrap)
            if isinstance(c, clientlib.Celery):
                celery_start = reader.end_offsets("celery")
            noroute_before = reader.count(SPEC["noroute_exchange"])
            for target, url, port in (("hopper", hopper.url, hopper.port), ("rabbitmq", rabbit.url, rabbit.port)):
                res = run_program(ctx, c, target, url, port, run_id, logdir)
                results[(c.name, target)] = res
                log("%s on %s: %s (%.1fs)%s" % (
                    c.name, target, " ".join("%s=%s" % (s, res.status(s)) for s in c.steps), res.seconds,
                    " " + res.error if res.error else ""))
            if isinstance(c, clientlib.Celery):
                kafka_checks[c.name] = check_celery_kafka(reader, c, results[(c.name, "hopper")], celery_start)
                # The worker acked every task of queue celery, old ones too.
                kafka_checks[c.name]["committed"] = committed_check(reader, bootstrap, "celery", "celery")
            else:
                kafka_checks[c.name], kprops = check_kafka(reader, c, run_id, noroute_before)
                topic = "compat.%s.%s" % (c.name.replace("-", ""), run_id)
                kafka_checks[c.name]["committed"] = committed_check(reader, bootstrap, topic, topic + ".q")
                consumed_by[c.name] = {t: consumed(results[(c.name, t)], kprops) for t in ("hopper", "rabbitmq")}
            log("%s Kafka: %s" % (c.name, " ".join("%s=%s" % (k, "ok" if v.ok else "FAIL") for k, v in kafka_checks[c.name].items())))
        if not args.no_suites:
            wanted_suites = [s for s in (args.suites or "").split(",") if s]
            for s in suitelib.ALL:
                if wanted_suites and s.name not in wanted_suites:
                    continue
                suite_results.append(suitelib.run_suite(s(), ctx, hopper, rabbit, logdir, log))
    except Exception:  # noqa: BLE001
        log("runner error:\n" + traceback.format_exc())
        results["__error__"] = traceback.format_exc()
    finally:
        log("stopping RabbitMQ and hopper")
        rabbit.stop()
        try:
            code = hopper.stop()
        except Exception as e:  # noqa: BLE001
            code = "error: %s" % e
        shutil.copy(hopper.log_path, logdir / "hopper.log")
        if rabbit.log_path.exists():
            shutil.copy(rabbit.log_path, logdir / "rabbitmq.log")

    report = matrix.Report(
        clients=chosen, installs=installs, results=results, kafka=kafka_checks, consumed=consumed_by,
        suites=suite_results, rabbit_version=rabbit.version(), hopper_exit=code, elapsed=time.monotonic() - T0,
        logdir=logdir, hopper_log=(logdir / "hopper.log").read_text(errors="replace"),
    )
    Path(args.out).write_text(report.markdown())
    log("wrote %s" % args.out)
    problems = report.problems()
    for p in problems:
        log("PROBLEM: " + p)
    print("compat: %d passed, %d failed" % (report.count_passed(), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
