#!/usr/bin/env python3
"""bench.py - hopper's benchmark driver: hopper against a direct librdkafka
producer and against RabbitMQ, on one machine, in one run.

    bench.py full  [--out tests/bench/RESULTS.md]   the whole benchmark
    bench.py smoke [--out build/bench/SMOKE.md]     every piece for seconds,
                                                    asserting no timing
    bench.py full|smoke --only transient,celery     only those parts of the
                                                    consume phase (durable,
                                                    transient, celery); the
                                                    report goes to
                                                    build/bench/ONLY.md
    bench.py contracts [--out tests/bench/CONTRACTS.md]
                                                    message contracts alone:
                                                    1 KiB JSON without a
                                                    contract, with a JSON
                                                    Schema one, with an Avro
                                                    one

Needs the tools built by tests/bench/bench.mk (BENCH_BIN, default
build/bench) and hopper (HOPPER, default build/hopper; copied first, so a
rebuild during the run changes nothing).

full starts its own Kafka cluster (contrib/kafka/cluster.sh with
KAFKA_BROKER_PORTS 9192-9194, KAFKA_CONTROLLER_PORTS 19192-19194,
KAFKA_DATA .cache/kafka-bench) and stops it at the end (BENCH_KEEP_CLUSTER=1
keeps it). smoke and contracts use the default cluster (9092-9094), or the
one the KAFKA_* variables name, starting it if it is down and leaving it
running, on topics of their own that they delete. full and smoke run a
private RabbitMQ node (tests/bench/rabbitmq.sh) and stop it at the end;
full, smoke and contracts a private schema registry
(contrib/registry/registry.sh on a free port, its data in the work
directory), stopped at the end too.

Every child process is bounded in time; all traffic goes to 127.0.0.1.
Raw results go next to the report as JSON.
"""
import argparse
import datetime
import json
import os
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# The tests' free_port: below the ephemeral range, so that no outgoing
# connection takes the port before the server meant for it listens.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from hopperproc import free_port  # noqa: E402,F401 (bridge.py imports it from here)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLUSTER = os.path.join(ROOT, "contrib", "kafka", "cluster.sh")
RABBIT = os.path.join(HERE, "rabbitmq.sh")
TICK = os.sysconf("SC_CLK_TCK")

SIZES = (256, 1024, 16384)
SIZE_NAMES = {256: "256 B", 1024: "1 KiB", 16384: "16 KiB"}


# hopper's own linger.ms (src/producer.c BATCH_LINGER_MS): the wait of a batch
# of more than five messages; a partition's message sent while nothing of it
# is in flight, or a release of up to five, goes at once (linger.ms 0).
# config/hopper.yaml does not set it, so load runs use hopper's default.
HOPPER_LINGER_MS = "1"
# The direct producer runs librdkafka's (and Kafka's) default.
DIRECT_LINGER_MS = "5"
# linger.ms values the full benchmark and `bench.py linger` compare.
LINGER_SWEEP = (1, 5, 20, 50)

# Consuming (README, "Task queues"): hopper with --enable-rabbit against
# RabbitMQ's two durable queue types.
CONSUME_TARGETS = ("hopper", "rabbit-classic", "rabbit-quorum")
PREFETCHES = (1, 100, 1000)
DELIVER_RATES = (1000, 10000)
DELIVER_PREFETCH = 100
# hopper's in-memory path (README, "Transient queues live in memory"): a
# non-durable queue on hopper against a transient classic queue on RabbitMQ,
# messages with delivery mode 1.
TRANSIENT_TARGETS = ("hopper-transient", "rabbit-transient")
QUEUE_TAGS = {"hopper": "h", "rabbit-classic": "rc", "rabbit-quorum": "rq",
              "hopper-transient": "ht", "rabbit-transient": "rt"}

# The Celery round trip (tests/bench/celery_rt.py): the pins of
# tests/compat/clients.py (PY_PINS), in a venv of the benchmark's own.
CELERY_PINS = {"celery": "5.7.0", "kombu": "5.7.0", "amqp": "5.4.2"}
CELERY_TARGETS = ("hopper", "rabbit")
CELERY_WORKERS = 4
# The consume phase's parts, which --only can pick.
CONSUME_PARTS = ("durable", "transient", "celery")

# Message contracts (docs/contracts.md): the same 1 KiB JSON bodies
# (bench_amqp publish --json) to an exchange without a contract, to one whose
# route has a JSON Schema contract (records Confluent-framed) and to one
# whose route has an Avro contract; the exchange and topic follow from the
# target.
REGISTRY = os.path.join(ROOT, "contrib", "registry", "registry.sh")
CONTRACT_TARGETS = ("hopper", "hopper-json", "hopper-avro")
CONTRACT_EXCHANGES = {"hopper": "bench", "hopper-json": "bench-json", "hopper-avro": "bench-avro"}
CONTRACT_YAML = {"hopper-json": "{format: json, encode: confluent}",
                 "hopper-avro": "{format: avro}"}
CONTRACT_SIZE = 1024
CONTRACT_RATE = 10000
# What the issue asks of a contract: at least this share of the
# uncontracted maximum, and e2e p95 under this many ms at CONTRACT_RATE.
CONTRACT_MIN_SHARE = 0.70
CONTRACT_P95_MS = 100
# The schemas of the bodies bench_common.h's bench_json_put writes.
CONTRACT_JSON_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "hopper benchmark body",
    "type": "object",
    "required": ["stamp", "seq", "pad"],
    "properties": {
        "stamp": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "seq": {"type": "integer", "minimum": 0},
        "pad": {"type": "string"},
    },
    "additionalProperties": False,
}
CONTRACT_AVRO_SCHEMA = {
    "type": "record", "name": "BenchBody", "namespace": "hopper.bench",
    "fields": [{"name": "stamp", "type": "string"}, {"name": "seq", "type": "long"},
               {"name": "pad", "type": "string"}],
}


class BenchError(Exception):
    pass


def log(msg):
    print("bench: %s %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])




def wait_port(port, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError("process exited (%s) before listening on %d" % (proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError("nothing listens on 127.0.0.1:%d after %ss" % (port, timeout))


def proc_cpu(pid):
    """utime + stime of pid in seconds (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_mem(pid):
    """(VmRSS, VmHWM) of pid in KiB."""
    rss = hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def proc_threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def summarize_callgrind(out):
    """Top costs from a callgrind output file: self and inclusive, per
    function and per object, and hopper's own functions."""
    rep = {}
    for key, incl in (("self", "no"), ("inclusive", "yes")):
        r = subprocess.run(["callgrind_annotate", "--inclusive=" + incl, "--threshold=100",
                            "--auto=no", out], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=120)
        rows = []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
            if not m:
                continue
            n, name = int(m.group(1).replace(",", "")), m.group(2).strip()
            if name == "PROGRAM TOTALS":
                rep["total_ir"] = n
            else:
                rows.append((n, name))
        rep[key] = rows[:25]
        # hopper's functions with their callees: where the main thread's
        # instructions go, including librdkafka's produce call.
        hot = re.compile(r"/hopper\]$|:(rd_kafka_producev|rd_kafka_header\w*|"
                         r"rd_kafka_event_destroy|evbuffer_(drain|pullup|read|copyout|add)|"
                         r"amqp_decode_\w+|event_base_loop) ")
        rep[key + "_hopper"] = [(n, name) for n, name in rows if hot.search(name)][:30]
        if key == "self":
            # Per library: the [object] suffix callgrind_annotate prints.
            objs = {}
            for n, name in rows:
                m = re.search(r"\[([^\]]+)\]$", name)
                obj = os.path.basename(m.group(1)) if m else "?"
                objs[obj] = objs.get(obj, 0) + n
            rep["by_object"] = sorted(objs.items(), key=lambda kv: -kv[1])[:12]
    return rep


class Runner:
    """Runs commands, records each exact command line for the report."""

    def __init__(self, env):
        self.env = env
        self.commands = []

    def note(self, cmd, env_keys=()):
        prefix = " ".join("%s=%s" % (k, shlex.quote(self.env[k])) for k in env_keys if k in self.env)
        line = (prefix + " " if prefix else "") + " ".join(shlex.quote(str(c)) for c in cmd)
        self.commands.append(line.replace(ROOT + "/", ""))

    def run(self, cmd, timeout, env_keys=(), check=True, quiet=False):
        self.note(cmd, env_keys)
        try:
            p = subprocess.run([str(c) for c in cmd], env=self.env, timeout=timeout,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            raise BenchError("timed out after %ss: %s" % (timeout, " ".join(map(str, cmd))))
        if check and p.returncode != 0:
            raise BenchError("%s exited %d:\n%s%s" % (" ".join(map(str, cmd)), p.returncode,
                                                      p.stdout[-2000:], p.stderr[-2000:]))
        if not quiet and p.stderr.strip():
            for line in p.stderr.strip().splitlines()[-5:]:
                log("  | " + line)
        return p

    def start(self, cmd, stdout=subprocess.PIPE, stderr=None, env_keys=(), preexec=None):
        self.note(cmd, env_keys)
        return subprocess.Popen([str(c) for c in cmd], env=self.env, stdout=stdout,
                                stderr=stderr if stderr is not None else subprocess.DEVNULL,
                                text=True, preexec_fn=preexec)


def read_line(proc, timeout):
    """Next stdout line of proc within timeout, or None."""
    deadline = time.time() + timeout
    buf = ""
    fd = proc.stdout.fileno()
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        ch = os.read(fd, 1).decode()
        if ch == "":
            break
        if ch == "\n":
            return buf
        buf += ch
    return None


def wait_ready(proc, what, timeout=60):
    line = read_line(proc, timeout)
    if line != "ready":
        stop(proc, 5)
        raise BenchError("%s did not get ready (got %r)" % (what, line))


def stop(proc, timeout=15, sig=signal.SIGTERM):
    """Signal proc, wait up to timeout, then SIGKILL. Returns its stdout rest."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out or ""


def last_json(text, what):
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError("%s printed no result line: %r" % (what, (text or "")[-500:]))


class Bench:
    def __init__(self, args, smoke):
        self.smoke = smoke
        self.args = args
        self.mode = args.mode
        contracts = self.mode == "contracts"
        # smoke and contracts use the cluster that runs (or the default one)
        # and leave it running.
        self.shared_cluster = smoke or contracts
        self.bin = os.path.abspath(os.environ.get("BENCH_BIN", os.path.join(ROOT, "build", "bench")))
        self.workdir = os.path.join(self.bin, "work-smoke" if smoke
                                    else "work-contracts" if contracts else "work")
        if os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        env = dict(os.environ)
        # Data directories the benchmark owns (its defaults) are removed after
        # the run: a full run writes gigabytes into Kafka's logs.
        self.own_kafka_data = "KAFKA_DATA" not in os.environ and not self.shared_cluster
        self.own_rabbit_dir = "BENCH_RABBIT_DIR" not in os.environ
        if contracts:
            env.setdefault("KAFKA_BROKER_PORTS", "9092 9093 9094")
            env.setdefault("KAFKA_CONTROLLER_PORTS", "19092 19093 19094")
            env.setdefault("KAFKA_DATA", ".cache/kafka-cluster")
            env.setdefault("BENCH_RABBIT_PORT", "0")  # no RabbitMQ
        elif smoke:
            env.setdefault("KAFKA_BROKER_PORTS", "9092 9093 9094")
            env.setdefault("KAFKA_CONTROLLER_PORTS", "19092 19093 19094")
            env.setdefault("KAFKA_DATA", ".cache/kafka-cluster")
            env.setdefault("BENCH_RABBIT_DIR", ".cache/rabbitmq-bench-smoke")
            env.setdefault("BENCH_RABBIT_NODE", "hopperbenchsmoke@localhost")
            env.setdefault("BENCH_RABBIT_EPMD", "4470")
            env.setdefault("BENCH_RABBIT_PORT", str(free_port()))
            env.setdefault("BENCH_RABBIT_DIST_PORT", str(free_port()))
        else:
            env.setdefault("KAFKA_BROKER_PORTS", "9192 9193 9194")
            env.setdefault("KAFKA_CONTROLLER_PORTS", "19192 19193 19194")
            env.setdefault("KAFKA_DATA", ".cache/kafka-bench")
            env.setdefault("BENCH_RABBIT_PORT", "5772")
            # Enforce the topics' retention.bytes (bench_kafka.c) every 10 s,
            # not every 5 minutes: max-rate rounds write up to 0.5 GB/s.
            env.setdefault("KAFKA_PROPERTIES", "log.retention.check.interval.ms=10000")
        self.env = env
        self.r = Runner(env)
        # The cluster's own account of where its brokers listen (ports and
        # KAFKA_HOST(S) as cluster.sh reads them).
        self.brokers = self.r.run([CLUSTER, "bootstrap"], 30, quiet=True,
                                  env_keys=("KAFKA_BROKER_PORTS",)).stdout.strip()
        if not self.brokers:
            raise BenchError("contrib/kafka/cluster.sh bootstrap printed nothing")
        self.rabbit_port = int(env["BENCH_RABBIT_PORT"])
        self.base_port = (free_port() if self.shared_cluster
                          else int(env.get("BENCH_HOPPER_PORT", "5872")))
        self.hopper_port = self.base_port
        self.all_hoppers = []
        tag = ("smoke-%d" % os.getpid() if smoke else "contracts-%d" % os.getpid() if contracts
               else "full")
        self.topic_hopper = "hopper-bench-%s" % tag
        self.topic_direct = "direct-bench-%s" % tag
        # The contracted targets' topics (subjects <topic>-value).
        self.topic_json = "hopper-bench-json-%s" % tag
        self.topic_avro = "hopper-bench-avro-%s" % tag
        self.contract_topics = []
        # The schema registry of the run (registry_start).
        self.registry_proc = None
        self.registry_env = None
        self.registry_url = None
        self.run_id = int(time.time()) % 1000000 * 100
        self.results = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "mode": self.mode, "runs": [], "load": []}
        # None: hopper's default; set by the linger sweep for hopper and the
        # direct producer alike.
        self.linger = None
        self.results["linger_ms"] = HOPPER_LINGER_MS
        self.results["direct_linger_ms"] = DIRECT_LINGER_MS
        self.hopper = None
        self.hopper_log = None
        self.cluster_started = False
        self.rabbit_started = False
        self.rabbit_proc = None
        # The load shape (see RESULTS.md, "Method").
        self.conns, self.chans = 2, 4
        # Small windows in smoke runs: a drain then takes little time.
        self.win = ({256: 64, 1024: 64, 16384: 16} if smoke
                    else {256: 2048, 1024: 2048, 16384: 256})
        if smoke:
            self.warmup, self.duration, self.fixed_duration, self.settle = 0.3, 1.0, 1.0, 0.3
            self.max_duration, self.rounds = 1.0, 1
        else:
            self.warmup, self.duration, self.fixed_duration, self.settle = 2.0, 8.0, 8.0, 1.0
            self.max_duration, self.rounds = 6.0, 3
        # Consuming: messages per drain, rounds, seconds per latency run.
        if smoke:
            self.drain_n, self.drain_rounds, self.deliver_duration = 500, 1, 1.0
        else:
            self.drain_n, self.drain_rounds, self.deliver_duration = 20000, 2, 15.0
        # Celery: sequential round trips, tasks in flight, tasks in the
        # concurrent run.
        if smoke:
            self.celery_seq, self.celery_conc, self.celery_total = 30, 16, 100
        else:
            self.celery_seq, self.celery_conc, self.celery_total = 2000, 32, 5000
        self.consume_topics = []
        # --only: the consuming parts to run, alone.
        only = getattr(args, "only", None)
        self.parts = tuple(only.split(",")) if only else CONSUME_PARTS
        self.only = bool(only)

    # ---- helpers ----

    def tool(self, name):
        return os.path.join(self.bin, name)

    def next_run(self):
        self.run_id += 1
        return self.run_id

    def kafka(self, *args, timeout=90):
        return self.r.run([self.tool("bench_kafka")] + list(args) + ["--brokers", self.brokers],
                          timeout)

    def cluster(self, *args, timeout=300):
        return self.r.run([CLUSTER] + list(args), timeout,
                          env_keys=("KAFKA_BROKER_PORTS", "KAFKA_CONTROLLER_PORTS", "KAFKA_DATA"))

    def rabbit(self, cmd, timeout=200):
        return self.r.run([RABBIT, cmd], timeout, env_keys=("BENCH_RABBIT_PORT",))

    # ---- hopper ----

    def hopper_config(self, path, port, drain_ms=10000, rabbit=False, contracts=()):
        """contracts: contracted targets (of CONTRACT_TARGETS) that get an
        exchange and a route of their own, with the run's registry."""
        registry = exchanges = routes = ""
        if contracts:
            registry = "registry:\n  url: \"%s\"\n" % self.registry_url
        for t in contracts:
            exchanges += "  - name: %s\n    type: topic\n" % CONTRACT_EXCHANGES[t]
            routes += ("  - exchange: %s\n    routing_key: \"#\"\n    topic: %s\n    key: none\n"
                       "    contract: %s\n" % (CONTRACT_EXCHANGES[t], self.target_topic(t),
                                               CONTRACT_YAML[t]))
        with open(path, "w") as f:
            f.write("""# Written by tests/bench/bench.py for one benchmark run.
listen:
  address: 127.0.0.1
  port: %(port)d
limits:
  max_connections: 12000
  max_unconfirmed: 10000
  max_inflight_bytes: 268435456
  drain_timeout: %(drain)d
kafka:
  bootstrap_servers: "%(brokers)s"
  topic_partitions: 3
  replication_factor: 3
  min_insync_replicas: 2
  # As config/hopper.yaml (the linger sweep adds linger.ms).
  properties:
    socket.nagle.disable: true%(linger)s
default_route: %(default_route)s
%(registry)sexchanges:
  - name: bench
    type: topic
%(exchanges)sroutes:
  - exchange: bench
    routing_key: "#"
    topic: %(topic)s
    key: none
%(routes)s""" % {"port": port, "brokers": self.brokers, "topic": self.topic_hopper,
       "drain": drain_ms, "registry": registry, "exchanges": exchanges, "routes": routes,
       # Task queues read the default exchange's topic for their name.
       "default_route": "true" if rabbit else "false",
       "linger": "\n    linger.ms: %s" % self.linger if self.linger else ""})

    def start_hopper(self, name, wrapper=(), timeout=30, port=None, wait=True, rabbit=False,
                     contracts=()):
        """Starts a hopper (under wrapper, e.g. valgrind); with wait, it becomes
        the one load runs use; rabbit: with --enable-rabbit and the default
        route on (task queues); contracts: see hopper_config. Returns its
        handle."""
        port = port or self.base_port
        cfg = os.path.join(self.workdir, "hopper-%s.yaml" % name)
        self.hopper_config(cfg, port, drain_ms=2000 if wrapper else 10000, rabbit=rabbit,
                           contracts=contracts)
        logf = open(os.path.join(self.workdir, "hopper-%s.log" % name), "w")
        proc = self.r.start(list(wrapper) + [self.hopper_bin, "-c", cfg]
                            + (["--enable-rabbit"] if rabbit else []), stdout=None,
                            stderr=logf, preexec=raise_nofile)
        h = (proc, logf, port)
        self.all_hoppers.append(h)
        if wait:
            self.use_hopper(h, timeout)
            if rabbit:
                self.wait_topology(logf.name, 45)
        return h

    def wait_topology(self, path, timeout):
        """Waits until hopper's log says it read its topology topic (or gave
        up at the load deadline): with task queues hopper listens at once but
        accepts connections only then (README, "Durable topology"), which
        the first run's fill would otherwise be charged for."""
        deadline = time.time() + timeout
        done = re.compile(r"topology: (read .* to its end|.* not read to its end)")
        while time.time() < deadline:
            if self.hopper.poll() is not None:
                raise BenchError("hopper exited (%s) while loading its topology"
                                 % self.hopper.returncode)
            with open(path) as f:
                if done.search(f.read()):
                    return
            time.sleep(0.1)
        raise BenchError("hopper did not read its topology topic within %ss" % timeout)

    def use_hopper(self, h, timeout):
        self.hopper, self.hopper_log, self.hopper_port = h
        wait_port(self.hopper_port, timeout, self.hopper)

    def stop_hopper(self, timeout=30, h=None):
        if h is None:
            if self.hopper is None:
                return
            h = (self.hopper, self.hopper_log, self.hopper_port)
            self.hopper = None
        p, logf, _ = h
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        logf.close()

    # ---- one load run ----

    def target_topic(self, target):
        """The Kafka topic a load_run target's messages go to."""
        return {"hopper": self.topic_hopper, "direct": self.topic_direct,
                "hopper-json": self.topic_json, "hopper-avro": self.topic_avro}[target]

    def amqp_publish_cmd(self, target, size, rate, duration, warmup, run, conns, chans, window,
                         json_body=False):
        cmd = [self.tool("bench_amqp"), "publish", "--conns", conns, "--chans", chans,
               "--window", window, "--rate", rate, "--size", size, "--duration", duration,
               "--warmup", warmup, "--run", run, "--persistent"] + (["--json"] if json_body else [])
        if target in CONTRACT_EXCHANGES:
            cmd += ["--port", self.hopper_port, "--exchange", CONTRACT_EXCHANGES[target],
                    "--routing-key", "bench.load"]
        else:
            q = "bench-" + target.split("-")[1]
            cmd += ["--port", self.rabbit_port, "--exchange", "", "--routing-key", q, "--queue", q,
                    "--queue-type", target.split("-")[1]]
        return cmd

    def load_run(self, target, size, rate, duration=None, warmup=None, sample_rss=False,
                 purpose=None, conns=None, chans=None, window=None, direct_linger=None,
                 json_body=False, into=None):
        """One measured run with its end-to-end timer. target: hopper, direct,
        rabbit-classic or rabbit-quorum, or hopper-json / hopper-avro (the
        contracted exchanges). rate 0 = max. conns x chans publishers with
        window unconfirmed each (the direct producer: the same total
        window). json_body: bench_amqp publish --json. The record goes to
        into (default: results' runs)."""
        duration = duration or self.duration
        warmup = self.warmup if warmup is None else warmup
        conns, chans = conns or self.conns, chans or self.chans
        window = window or self.win[size]
        run = self.next_run()
        la = loadavg()
        # End-to-end timer first, so it sees every measured message.
        if target == "rabbit-classic" or target == "rabbit-quorum":
            qt = target.split("-")[1]
            timer = self.r.start([self.tool("bench_amqp"), "consume", "--port", self.rabbit_port,
                                  "--queue", "bench-" + qt, "--queue-type", qt, "--run", run,
                                  "--hold", 600, "--settle", self.settle])
        else:
            topic = self.target_topic(target)
            timer = self.r.start([self.tool("bench_kafka"), "consume", "--brokers", self.brokers,
                                  "--topic", topic, "--run", run, "--hold", 600,
                                  "--settle", self.settle])
        wait_ready(timer, "end-to-end timer for " + target)
        if target == "direct":
            linger = direct_linger or self.linger or DIRECT_LINGER_MS
            cmd = [self.tool("bench_kafka"), "produce", "--brokers", self.brokers, "--topic",
                   self.topic_direct, "--window", window * conns * chans, "--rate", rate,
                   "--size", size, "--duration", duration, "--warmup", warmup, "--run", run,
                   "--linger", linger]
        else:
            cmd = self.amqp_publish_cmd(target, size, rate, duration, warmup, run, conns, chans,
                                        window, json_body)
        on_hopper = target in CONTRACT_EXCHANGES
        cpu0 = proc_cpu(self.hopper.pid) if on_hopper else None
        t0 = time.time()
        gen = self.r.start(cmd)
        rss_peak = 0
        out = ""
        limit = warmup + duration + 60
        while gen.poll() is None and time.time() - t0 < limit:
            if sample_rss and target == "hopper":
                rss_peak = max(rss_peak, proc_mem(self.hopper.pid)[0])
            try:
                out, _ = gen.communicate(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
        if gen.poll() is None:
            stop(gen, 5)
            stop(timer, 5)
            raise BenchError("load generator for %s did not finish in %ss" % (target, limit))
        wall = time.time() - t0
        cpu = proc_cpu(self.hopper.pid) - cpu0 if on_hopper else None
        if not out:
            # It exited between two polls: what a timed-out communicate()
            # read is kept inside the Popen, and only communicate() returns it.
            out, _ = gen.communicate()
        pub = last_json(out, "load generator (exit code %s)" % gen.returncode)
        e2e = last_json(stop(timer, 20, signal.SIGTERM), "end-to-end timer")
        rec = {"target": target, "size": size, "rate": rate, "load_avg": la, "pub": pub,
               "e2e": e2e, "wall_s": round(wall, 3)}
        if purpose:
            rec["purpose"] = purpose
        if json_body:
            rec["json"] = True
        if cpu is not None:
            rec["hopper_cpu_s"] = round(cpu, 3)
            rss, hwm = proc_mem(self.hopper.pid)
            rec["hopper_rss_kib"] = rss
            rec["hopper_hwm_kib"] = hwm
            if sample_rss:
                rec["hopper_rss_peak_kib"] = rss_peak
        (self.results["runs"] if into is None else into).append(rec)
        err = pub.get("error")
        log("%-14s %6s rate %-6s -> %8.0f msg/s  confirm p50 %s p99 %s  e2e p95 %s (n %d/%d)%s"
            % (target, SIZE_NAMES[size], rate or "max", pub["msgs_per_s"], pub["confirm"]["p50"],
               pub["confirm"]["p99"], e2e["e2e"]["p95"], e2e["measured"], pub["measured_sent"],
               "  ERROR " + err if err else ""))
        return rec

    # ---- phases ----

    def facts(self):
        f = {}
        f["cores"] = os.cpu_count()
        with open("/proc/meminfo") as m:
            f["mem_total_kib"] = int(m.readline().split()[1])
        try:
            with open("/proc/cpuinfo") as c:
                f["cpu_model"] = next((l.split(":", 1)[1].strip() for l in c
                                       if l.startswith("model name")), "?")
        except OSError:
            f["cpu_model"] = "?"
        f["kernel"] = os.uname().release
        f["kafka_brokers"] = self.brokers
        f["hopper"] = self.r.run([self.hopper_bin, "-V"], 10).stdout.strip()
        git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        src_dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src",
                                    "include"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True).stdout.strip()
        f["git"] = git.stdout.strip() + (" (src/ or include/ modified)" if src_dirty else "")
        f["librdkafka"] = self.r.run([self.tool("bench_kafka"), "version"], 10).stdout.strip()
        data = self.env["KAFKA_DATA"]
        if not data.startswith("/"):
            data = os.path.join(ROOT, data)
        try:
            with open(os.path.join(data, "kafka.version")) as kv:
                f["kafka"] = kv.read().strip()
        except OSError:
            f["kafka"] = self.env.get("KAFKA_VERSION", "4.1.1")
        f["rabbitmq"] = self.rabbit("version", 30).stdout.strip() if self.rabbit_started else None
        with open(REGISTRY) as rs:
            m = re.search(r"^readonly APICURIO_VERSION=(\S+)", rs.read(), re.M)
        f["registry"] = "Apicurio Registry %s" % (m.group(1) if m else "?")
        f["erlang"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "erlang-base"],
                                     stdout=subprocess.PIPE, text=True).stdout.strip()
        f["rabbitmq_c"] = subprocess.run(["pkg-config", "--modversion", "librabbitmq"],
                                         stdout=subprocess.PIPE, text=True).stdout.strip()
        jv = subprocess.run(["java", "-version"], stderr=subprocess.PIPE, text=True).stderr
        f["java"] = jv.splitlines()[0] if jv else "?"
        f["perftest"] = self.perftest_version()
        f["load_avg_start"] = open("/proc/loadavg").read().split()[:3]
        self.results["facts"] = f

    def perftest_dir(self):
        return os.path.join(ROOT, ".cache", "perftest", "lib")

    def perftest_version(self):
        d = self.perftest_dir()
        if os.path.isdir(d):
            for n in os.listdir(d):
                m = re.match(r"perf-test-(.+)\.jar$", n)
                if m:
                    return m.group(1)
        return None

    def fetch_perftest(self):
        """Resolves PerfTest from Maven Central once (tests/bench/perftest-pom.xml)."""
        if self.perftest_version():
            return True
        tmp = self.perftest_dir() + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        p = self.r.run(["mvn", "-B", "--no-transfer-progress", "-f",
                        os.path.join(HERE, "perftest-pom.xml"), "dependency:copy-dependencies",
                        "-DincludeScope=runtime", "-DoutputDirectory=" + tmp], 600, check=False,
                       quiet=True)
        if p.returncode != 0:
            log("PerfTest could not be resolved from Maven Central; skipping it")
            return False
        os.rename(tmp, self.perftest_dir())
        return True

    def setup(self, rabbit=True, registry=False):
        """hopper's copy, RabbitMQ and the schema registry starting in the
        background (each when asked for), Kafka, and the load topics."""
        os.makedirs(os.path.join(self.bin), exist_ok=True)
        src = os.path.abspath(os.environ.get("HOPPER", os.path.join(ROOT, "build", "hopper")))
        self.hopper_bin = os.path.join(self.workdir, "hopper")
        shutil.copy2(src, self.hopper_bin)
        if rabbit:
            log("starting RabbitMQ (in the background)")
            self.rabbit_proc = subprocess.Popen([RABBIT, "start"], env=self.env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                text=True)
            self.rabbit_started = True
            self.r.note([RABBIT, "start"], ("BENCH_RABBIT_PORT",))
        if registry:
            self.registry_start()
        log("starting Kafka")
        if self.shared_cluster and self.cluster_serving():
            log("Kafka at %s already serves; not calling cluster.sh" % self.brokers)
        else:
            self.cluster("start")
        self.cluster_started = True
        topics = [self.topic_hopper] + ([self.topic_direct] if rabbit else [])
        for t in topics:
            self.kafka("delete", "--topic", t)
        for t in topics:
            self.create_topic(t)
        log("topics %s ready" % " and ".join(topics))
        # hopper's first queue.declare asks the group coordinator through
        # librdkafka's admin API, which aborts the process when that request
        # fails on a cluster whose __consumer_offsets does not exist yet
        # (NOTES.md, "Consuming"): the benchmark starts once groups are served.
        rec = last_json(self.kafka("coordinator", "--topic", self.topic_hopper, "--hold", 120,
                                   timeout=150).stdout, "bench_kafka coordinator")
        log("group coordinator answers (after %.1f s)" % rec["wait_s"])

    def create_topic(self, t):
        """Creates topic t as hopper would (3 partitions, rf 3, min ISR 2)."""
        # Deletion is asynchronous in Kafka: retry creation briefly.
        for attempt in range(20):
            p = self.r.run([self.tool("bench_kafka"), "create", "--topic", t, "--brokers",
                            self.brokers, "--partitions", 3, "--rf", 3, "--min-isr", 2],
                           90, check=False, quiet=True)
            if p.returncode == 0:
                return
            time.sleep(1)
        raise BenchError("cannot create topic %s: %s" % (t, p.stderr[-500:]))

    def cluster_serving(self):
        """True if the first broker lists three brokers (kcat -L), so smoke
        runs need not wait on cluster.sh's lock while others use it."""
        kcat = shutil.which("kcat")
        if not kcat:
            return False
        try:
            p = subprocess.run([kcat, "-L", "-b", self.brokers.split(",")[0], "-m", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0 and len(re.findall(r"^ +broker \d+ at ", p.stdout, re.M)) == 3

    def finish_setup(self):
        """Waits for RabbitMQ (if it was started), then records the machine
        and versions."""
        if self.rabbit_proc is not None:
            try:
                _, err = self.rabbit_proc.communicate(timeout=200)
            except subprocess.TimeoutExpired:
                self.rabbit_proc.kill()
                _, err = self.rabbit_proc.communicate()
            if self.rabbit_proc.returncode != 0:
                raise BenchError("RabbitMQ did not start: %s" % (err or "")[-1000:])
        self.facts()

    # ---- the schema registry (message contracts) ----

    def registry_start(self):
        """Starts a registry of the run's own in the background:
        contrib/registry/registry.sh (Apicurio, the Confluent API under
        /apis/ccompat/v7) on a free port (BENCH_REGISTRY_PORT to choose
        one), its data in the work directory, as
        tests/integration/registryproc.py does."""
        port = os.environ.get("BENCH_REGISTRY_PORT") or str(free_port())
        self.registry_env = dict(self.env, REGISTRY_HOST="127.0.0.1", REGISTRY_PORT=port,
                                 REGISTRY_DATA=os.path.join(self.workdir, "registry"))
        self.registry_url = "http://127.0.0.1:%s/apis/ccompat/v7" % port
        log("starting the schema registry on port %s (in the background)" % port)
        self.registry_note("start")
        # Its first start on a machine builds it with Maven (make setup does
        # that beforehand); registry.sh's own deadline bounds the start.
        self.registry_proc = subprocess.Popen([REGISTRY, "start"], env=self.registry_env,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True)

    def registry_note(self, cmd):
        line = "REGISTRY_PORT=%s REGISTRY_DATA=%s %s %s" % (
            self.registry_env["REGISTRY_PORT"], self.registry_env["REGISTRY_DATA"], REGISTRY, cmd)
        self.r.commands.append(line.replace(ROOT + "/", ""))

    def registry_ready(self, timeout=900):
        """Waits for registry_start's registry.sh start."""
        if self.registry_proc is None:
            raise BenchError("the schema registry was not started")
        try:
            out, _ = self.registry_proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.registry_proc.kill()
            out, _ = self.registry_proc.communicate()
        if self.registry_proc.returncode != 0:
            raise BenchError("registry.sh start exited %s:\n%s" % (self.registry_proc.returncode,
                                                                   (out or "")[-1500:]))

    def registry_register(self, subject, schema, schema_type):
        """Registers schema (a dict) under subject; returns its id."""
        import urllib.error
        import urllib.request
        body = json.dumps({"schema": json.dumps(schema), "schemaType": schema_type}).encode()
        url = "%s/subjects/%s/versions" % (self.registry_url, subject)
        self.r.commands.append("POST %s  {\"schemaType\": \"%s\", \"schema\": <%s>}" % (
            url, schema_type, "CONTRACT_JSON_SCHEMA" if schema_type == "JSON"
            else "CONTRACT_AVRO_SCHEMA"))
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/vnd.schemaregistry.v1+json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                ans = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            detail = e.read().decode(errors="replace")[:500] if hasattr(e, "read") else ""
            raise BenchError("registering %s at %s: %s %s" % (subject, url, e, detail))
        if not isinstance(ans.get("id"), int):
            raise BenchError("registering %s: the registry answered %r" % (subject, ans))
        return ans["id"]

    def registry_stop(self):
        if self.registry_proc is None:
            return
        if self.registry_proc.poll() is None:
            try:
                self.registry_proc.wait(300)
            except subprocess.TimeoutExpired:
                self.registry_proc.kill()
        self.registry_note("stop")
        p = subprocess.run([REGISTRY, "stop"], env=self.registry_env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if p.returncode != 0:
            log("registry.sh stop exited %d: %s" % (p.returncode, p.stdout[-500:]))
        self.registry_proc = None

    def idle_connections(self, counts):
        """hopper's RSS idle, then holding idle AMQP connections (fresh hopper)."""
        pid = self.start_hopper("idle")[0].pid
        time.sleep(1.0 if self.smoke else 3.0)
        res = {"idle_rss_kib": proc_mem(pid)[0]}
        held = []
        total = 0
        try:
            for n in counts:
                add = n - total
                p = self.r.start([self.tool("bench_amqp"), "idle", "--port", self.hopper_port,
                                  "--conns", add, "--hold", 600], preexec=raise_nofile)
                held.append(p)
                line = read_line(p, 120)
                if not line:
                    raise BenchError("bench_amqp idle printed nothing")
                info = json.loads(line)
                if info["opened"] != add:
                    raise BenchError("only %d of %d idle connections opened: %s"
                                     % (info["opened"], add, info["error"]))
                total = n
                time.sleep(1.0 if self.smoke else 2.0)
                rss = proc_mem(pid)[0]
                res["rss_kib_%d" % n] = rss
                res["open_s_%d" % n] = info["open_s"]
                res["per_conn_kib_%d" % n] = round((rss - res["idle_rss_kib"]) / n, 2)
                log("hopper RSS with %d idle connections: %d KiB (idle %d KiB, %.2f KiB each)"
                    % (n, rss, res["idle_rss_kib"], res["per_conn_kib_%d" % n]))
        finally:
            for p in held:
                stop(p, 10)
            self.stop_hopper()
        self.results["idle"] = res

    # ---- consuming (task queues) ----

    def consume_queue(self, kind, target, run):
        """A fresh queue for one consume run. For hopper's durable queue its
        topic (the default exchange's topic for the queue) is created first,
        as hopper would on the first publish, so the consumer group finds its
        partitions at once; teardown deletes it. A transient queue has no
        topic."""
        q = "bench-%s-%s-%d" % (kind, QUEUE_TAGS[target], run)
        if target == "hopper":
            self.create_topic(q)
            self.consume_topics.append(q)
        return q

    def amqp_target(self, target):
        """(port, queue type) of a consume target."""
        if target == "hopper":
            return self.hopper_port, "classic"
        if target == "hopper-transient":
            return self.hopper_port, "transient"
        return self.rabbit_port, target.split("-")[1]

    @staticmethod
    def persistence(qt):
        """bench_amqp publish's option for the messages of a queue of type
        qt: persistent, except into a transient queue (where --queue-type
        transient makes them delivery mode 1)."""
        return [] if qt == "transient" else ["--persistent"]

    def fill_queue(self, target, q, n, run):
        """Publishes n messages of 1 KiB to q through the default exchange and
        waits for every confirm (one connection, two channels)."""
        port, qt = self.amqp_target(target)
        t0 = time.time()
        p = self.r.run([self.tool("bench_amqp"), "publish", "--port", port, "--exchange", "",
                        "--routing-key", q, "--queue", q, "--queue-type", qt, "--count", n,
                        "--conns", 1, "--chans", 2, "--window", 500, "--rate", 0, "--size", 1024,
                        "--warmup", 0, "--duration", 300, "--drain", 30, "--run", run]
                       + self.persistence(qt), 400)
        wall = time.time() - t0
        rec = last_json(p.stdout, "queue filler")
        if rec["acked"] != n or rec.get("error"):
            raise BenchError("filling %s: %d of %d confirmed (%s)" % (q, rec["acked"], n,
                                                                     rec.get("error")))
        # Its own msgs_per_s counts over --duration; the fill's rate is over
        # the process's life (connecting and declaring included).
        return {"acked": rec["acked"], "wall_s": round(wall, 3), "msgs_per_s": n / wall,
                "confirm": rec["confirm"]}

    def drain_run(self, target, prefetch, n):
        """A queue (durable; transient for the -transient targets) holding n
        confirmed messages of 1 KiB, then one
        consumer with basic.qos prefetch, acking each delivery on its own,
        drains it: msg/s from its first delivery to its last."""
        run = self.next_run()
        q = self.consume_queue("drain", target, run)
        fill = self.fill_queue(target, q, n, run)
        port, qt = self.amqp_target(target)
        hold = 30 if self.smoke else 240
        la = loadavg()
        cpu0 = proc_cpu(self.hopper.pid) if target.startswith("hopper") else None
        p = self.r.start([self.tool("bench_amqp"), "consume", "--port", port, "--queue", q,
                          "--queue-type", qt, "--prefetch", prefetch, "--count", n, "--run", run,
                          "--hold", hold, "--stall", 5 if self.smoke else 10, "--delete"])
        wait_ready(p, "consumer of " + q)
        try:
            out, _ = p.communicate(timeout=hold + 30)
        except subprocess.TimeoutExpired:
            stop(p, 5)
            raise BenchError("consumer of %s did not finish in %ss" % (q, hold + 30))
        rec = {"target": target, "prefetch": prefetch, "n": n, "load_avg": la,
               "fill": fill,
               "consume": last_json(out, "consumer of " + q)}
        if cpu0 is not None:
            rec["hopper_cpu_s"] = round(proc_cpu(self.hopper.pid) - cpu0, 3)
            rec["hopper_rss_kib"] = proc_mem(self.hopper.pid)[0]
        self.results.setdefault("drain", []).append(rec)
        c = rec["consume"]
        log("drain %-14s prefetch %-4d -> %8.0f msg/s  first delivery after %.2f s, "
            "%d/%d delivered, %d redelivered%s%s"
            % (target, prefetch, c["msgs_per_s"], c["first_s"], c["of_run"], n,
               c["redelivered"], "  STALLED" if c.get("stalled") else "",
               "  ERROR " + c["error"] if c.get("error") else ""))
        return rec

    def drain_runs(self, targets, prefetches, rounds):
        """Every prefetch; per round every system back to back, the order
        rotating, as max_runs does."""
        for prefetch in prefetches:
            for rnd in range(rounds):
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for t in order:
                    self.drain_run(t, prefetch, self.drain_n)["round"] = rnd

    def deliver_run(self, target, rate, duration):
        """Publish -> deliver latency: one publisher with confirms at a fixed
        rate of 1 KiB, one consumer (prefetch DELIVER_PREFETCH, an ack per
        delivery) on the same queue (durable; transient for the -transient
        targets, its messages delivery mode 1); deliver time - the publish's
        scheduled send time, from the stamp in the body."""
        run = self.next_run()
        q = self.consume_queue("deliver", target, run)
        port, qt = self.amqp_target(target)
        cons = self.r.start([self.tool("bench_amqp"), "consume", "--port", port, "--queue", q,
                             "--queue-type", qt, "--prefetch", DELIVER_PREFETCH, "--run", run,
                             "--hold", 600, "--settle", self.settle, "--delete"])
        wait_ready(cons, "consumer of " + q)
        # A few unmeasured messages first (another run id): the measured
        # publisher starts once one of them was delivered, so hopper's group
        # join is not charged to the first measured messages.
        try:
            self.r.run([self.tool("bench_amqp"), "publish", "--port", port, "--exchange", "",
                        "--routing-key", q, "--count", 20, "--rate", 200, "--warmup", 0,
                        "--duration", 30, "--run", self.next_run(), "--queue-type", qt]
                       + self.persistence(qt), 60)
            line = read_line(cons, 60)
            if not line or not line.startswith("first "):
                raise BenchError("consumer of %s saw no primer message (got %r)" % (q, line))
        except BenchError:
            stop(cons, 5)
            raise
        la = loadavg()
        cpu0 = proc_cpu(self.hopper.pid) if target.startswith("hopper") else None
        warmup = 0.3 if self.smoke else 2.0
        p = self.r.run([self.tool("bench_amqp"), "publish", "--port", port, "--exchange", "",
                        "--routing-key", q, "--conns", 1, "--chans", 1, "--window", 2048,
                        "--rate", rate, "--size", 1024, "--duration", duration, "--warmup",
                        warmup, "--run", run, "--queue-type", qt] + self.persistence(qt),
                       duration + warmup + 60,
                       check=False)
        try:
            pub = last_json(p.stdout, "publisher (exit code %s)" % p.returncode)
        finally:
            out = stop(cons, 20, signal.SIGTERM)
        rec = {"target": target, "rate": rate, "prefetch": DELIVER_PREFETCH, "load_avg": la,
               "pub": pub, "e2e": last_json(out, "consumer of " + q)}
        if cpu0 is not None:
            rec["hopper_cpu_s"] = round(proc_cpu(self.hopper.pid) - cpu0, 3)
        self.results.setdefault("deliver", []).append(rec)
        x = rec["e2e"]
        log("deliver %-14s rate %-6d -> %8.0f msg/s  deliver p50/p95/p99 %s/%s/%s ms "
            "(n %d/%d, %d redelivered)%s"
            % (target, rate, pub["msgs_per_s"], x["e2e"]["p50"], x["e2e"]["p95"], x["e2e"]["p99"],
               x["measured"], pub["measured_sent"], x["redelivered"],
               "  ERROR " + (pub.get("error") or x.get("error") or "")
               if pub.get("error") or x.get("error") else ""))
        return rec

    def deliver_runs(self, targets, rates, duration):
        for rate in rates:
            for t in targets:
                self.deliver_run(t, rate, duration)

    def consume_phase(self, parts=CONSUME_PARTS):
        """Drain throughput and publish -> deliver latency against a hopper
        with --enable-rabbit (its own process) and RabbitMQ: durable queues,
        then transient ones (hopper's in-memory path; smoke: prefetch 100
        only), then the Celery round trip."""
        rates = DELIVER_RATES[:1] if self.smoke else DELIVER_RATES
        self.start_hopper("consume", rabbit=True)
        try:
            if "durable" in parts:
                self.drain_runs(list(CONSUME_TARGETS), PREFETCHES, self.drain_rounds)
                self.deliver_runs(CONSUME_TARGETS, rates, self.deliver_duration)
            if "transient" in parts:
                self.drain_runs(list(TRANSIENT_TARGETS), (100,) if self.smoke else PREFETCHES,
                                self.drain_rounds)
                self.deliver_runs(TRANSIENT_TARGETS, rates, self.deliver_duration)
            if "celery" in parts:
                self.celery_phase()
        finally:
            self.stop_hopper()

    # ---- the Celery round trip ----

    def celery_venv(self):
        """A venv under .cache/bench with CELERY_PINS from PyPI, made once
        (as tests/compat's ensure_venv); returns its directory."""
        venv = os.path.join(ROOT, ".cache", "bench", "venv")
        stamp = os.path.join(venv, ".pins")
        want = " ".join("%s==%s" % kv for kv in sorted(CELERY_PINS.items()))
        try:
            with open(stamp) as f:
                if f.read() == want:
                    return venv
        except OSError:
            pass
        py = os.path.join(venv, "bin", "python")
        if not os.path.exists(py):
            self.r.run(["/usr/bin/python3", "-m", "venv", venv], 120)
        log("installing %s into %s" % (want, os.path.relpath(venv, ROOT)))
        self.r.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                   + want.split(), 600)
        with open(stamp, "w") as f:
            f.write(want)
        return venv

    def celery_run(self, venv, target):
        """A Celery worker (prefork, CELERY_WORKERS processes) on a fresh task
        queue of target's broker, and tests/bench/celery_rt.py's client:
        sequential round trips (apply_async, result.get() through rpc://),
        then tasks/s with celery_conc in flight."""
        run = self.next_run()
        q = "bench-celery-%s-%d" % (target[0], run)
        port = self.hopper_port if target == "hopper" else self.rabbit_port
        if target == "hopper":
            # hopper creates the queue's topic at the first declare.
            self.consume_topics.append(q)
        env = dict(self.env, BENCH_CELERY_BROKER="amqp://guest:guest@127.0.0.1:%d//" % port,
                   BENCH_CELERY_QUEUE=q, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
        wlog_path = os.path.join(self.workdir, "celery-worker-%s.log" % target)
        wlog = open(wlog_path, "w")
        wcmd = [os.path.join(venv, "bin", "celery"), "-A", "celery_rt", "worker", "-P", "prefork",
                "-c", CELERY_WORKERS, "-n", "bench%d@localhost" % run, "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        prefix = "BENCH_CELERY_BROKER=%s BENCH_CELERY_QUEUE=%s PYTHONPATH=tests/bench " % (
            env["BENCH_CELERY_BROKER"], q)
        self.r.commands.append(prefix + " ".join(map(str, wcmd)).replace(ROOT + "/", ""))
        worker = subprocess.Popen([str(c) for c in wcmd], cwd=HERE, env=env, stdout=wlog,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        ccmd = [os.path.join(venv, "bin", "python"), os.path.join(HERE, "celery_rt.py"),
                "client", "--seq", self.celery_seq, "--conc", self.celery_conc, "--total",
                self.celery_total, "--timeout", 10 if self.smoke else 30,
                "--ready-timeout", 60 if self.smoke else 90,
                "--warmup", 5 if self.smoke else 50]
        self.r.commands.append(prefix + " ".join(map(str, ccmd)).replace(ROOT + "/", ""))
        la = loadavg()
        cpu0 = proc_cpu(self.hopper.pid) if target == "hopper" else None
        t0 = time.time()
        # Inside bench-smoke's own timeout, so that teardown still runs.
        limit = 120 if self.smoke else 900
        try:
            p = subprocess.run([str(c) for c in ccmd], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=limit)
            out, err = p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            out, err = e.stdout or "", "client timed out after %d s" % limit
        finally:
            # Warm shutdown (SIGTERM), then the whole process group.
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
            except ProcessLookupError:
                pass
            wlog.close()
        try:
            client = last_json(out if isinstance(out, str) else out.decode(), "celery client")
        except BenchError as e:
            client = {"error": "%s; stderr: %s" % (e, (err or "")[-800:])}
        m = re.search(r"^ready ([\d.]+)$", out if isinstance(out, str) else "", re.M)
        rec = {"target": target, "queue": q, "workers": CELERY_WORKERS, "load_avg": la,
               "wall_s": round(time.time() - t0, 3), "ready_s": float(m.group(1)) if m else None,
               "client": client}
        if cpu0 is not None:
            rec["hopper_cpu_s"] = round(proc_cpu(self.hopper.pid) - cpu0, 3)
        if client.get("error"):
            # A finding, not a retry: what the worker and hopper said.
            with open(wlog_path) as f:
                rec["worker_log"] = f.read().splitlines()[-30:]
            if target == "hopper":
                self.hopper_log.flush()
                with open(self.hopper_log.name) as f:
                    rec["hopper_log"] = [l for l in f.read().splitlines()
                                         if q in l or "celery" in l or "error" in l.lower()
                                         or "warn" in l.lower()][-40:]
        self.results.setdefault("celery", []).append(rec)
        rt = client.get("rtt_ms") or {}
        log("celery %-7s round trip p50/p95/p99 %s/%s/%s ms (n %s), %s tasks/s with %s in "
            "flight%s" % (target, rt.get("p50"), rt.get("p95"), rt.get("p99"), rt.get("n"),
                          client.get("tasks_per_s"), self.celery_conc,
                          "  ERROR " + client["error"] if client.get("error") else ""))
        for line in rec.get("hopper_log", [])[-10:]:
            log("  hopper | " + line)
        return rec

    def celery_phase(self):
        """The Celery round trip against hopper and RabbitMQ."""
        venv = self.celery_venv()
        for t in CELERY_TARGETS:
            self.celery_run(venv, t)

    def wait_assigned(self, queues, timeout):
        """Waits until hopper's log says each queue's group got its
        partitions (feed.c logs "queue 'Q': N partition(s) assigned")."""
        path = os.path.join(self.workdir, "hopper-idle-consumers.log")
        deadline = time.time() + timeout
        want = {"queue '%s': " % q for q in queues}
        while time.time() < deadline:
            with open(path) as f:
                text = f.read()
            missing = [w for w in want if not re.search(re.escape(w) + r"\d+ partition\(s\) "
                                                        r"assigned", text)]
            if not missing:
                return
            time.sleep(0.2)
        raise BenchError("no partitions assigned within %ss for %s"
                         % (timeout, ", ".join(sorted(missing))[:300]))

    def idle_consumers(self, counts, nqueues):
        """hopper's memory per idle consumer and per queue in use (a fresh
        hopper with --enable-rabbit): idle connections with one channel and
        one consumer each (prefetch 100, acks), first all on one durable
        queue, then nqueues more, each on a queue of its own (each queue in
        use is a librdkafka consumer: its threads, its broker connections)."""
        tag = "smoke-%d" % os.getpid() if self.smoke else "full"
        shared = "bench-idle-shared-%s" % tag
        own = "bench-idle-own-%s" % tag
        queues = [shared] + ["%s-%d" % (own, i) for i in range(nqueues)]
        for q in queues:
            self.create_topic(q)
            self.consume_topics.append(q)
        h = self.start_hopper("idle-consumers", rabbit=True)
        pid = h[0].pid
        settle = 1.0 if self.smoke else 3.0
        cpu_window = 1.0 if self.smoke else 5.0
        res = {}
        held = []

        def sample(key):
            time.sleep(settle)
            c0 = proc_cpu(pid)
            time.sleep(cpu_window)
            res["cpu_pct_" + key] = round(100.0 * (proc_cpu(pid) - c0) / cpu_window, 2)
            res["rss_kib_" + key] = proc_mem(pid)[0]
            res["threads_" + key] = proc_threads(pid)
            log("hopper idle consumers, %s: RSS %d KiB, %d threads, CPU %.1f %%"
                % (key, res["rss_kib_" + key], res["threads_" + key], res["cpu_pct_" + key]))

        def hold(conns, queue, nq=None):
            cmd = [self.tool("bench_amqp"), "idle", "--port", self.hopper_port, "--conns", conns,
                   "--queue", queue, "--prefetch", 100, "--hold", 600]
            if nq:
                cmd += ["--queues", nq]
            p = self.r.start(cmd, preexec=raise_nofile)
            held.append(p)
            line = read_line(p, 120)
            if not line:
                raise BenchError("bench_amqp idle printed nothing")
            info = json.loads(line)
            if info["opened"] != conns:
                raise BenchError("only %d of %d idle consumers started: %s"
                                 % (info["opened"], conns, info["error"]))
            return info

        try:
            sample("none")
            # The shared queue's first consumer makes its feed (group join).
            hold(1, shared)
            self.wait_assigned([shared], 60)
            sample("first")
            total = 1
            for n in counts:
                info = hold(n - total, shared)
                total = n
                res["open_s_%d" % n] = info["open_s"]
                sample("shared_%d" % n)
                res["per_consumer_kib_%d" % n] = round(
                    (res["rss_kib_shared_%d" % n] - res["rss_kib_first"]) / (n - 1), 2)
            last = "shared_%d" % counts[-1]
            hold(nqueues, own, nqueues)
            self.wait_assigned(queues[1:], 120)
            sample("own_%d" % nqueues)
            per_cons = res["per_consumer_kib_%d" % counts[-1]]
            res["per_queue_kib"] = round(
                (res["rss_kib_own_%d" % nqueues] - res["rss_kib_" + last]) / nqueues - per_cons, 1)
            res["per_queue_threads"] = round(
                (res["threads_own_%d" % nqueues] - res["threads_" + last]) / nqueues, 1)
            res["per_queue_cpu_pct"] = round(
                (res["cpu_pct_own_%d" % nqueues] - res["cpu_pct_" + last]) / nqueues, 2)
            res["counts"] = list(counts)
            res["queues"] = nqueues
            log("hopper per idle consumer (one queue): %s KiB; per queue in use: %s KiB, "
                "%s threads, %s %% CPU" % (per_cons, res["per_queue_kib"],
                                          res["per_queue_threads"], res["per_queue_cpu_pct"]))
        finally:
            for p in held:
                stop(p, 10)
            self.stop_hopper()
        self.results["idle_consumers"] = res

    def max_runs(self, sizes, targets, rounds):
        """Max-rate runs in rounds; each round runs every system back to back
        (the order rotating), so a ratio compares runs seconds apart."""
        for size in sizes:
            for rnd in range(rounds):
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for t in order:
                    rec = self.load_run(t, size, 0, sample_rss=(t == "hopper"),
                                        duration=self.max_duration)
                    rec["round"] = rnd

    def max_of(self, target, size):
        """Median over the rounds of target's max-rate runs."""
        v = sorted(r["pub"]["msgs_per_s"] for r in self.results["runs"]
                   if r["target"] == target and r["size"] == size and r["rate"] == 0
                   and not r.get("purpose"))
        return v[len(v) // 2] if v else None

    def fixed_runs(self, plan):
        """plan: [(size, [targets])]. Rates 1,000 and 10,000 msg/s (run when
        not above hopper's max; always for 1 KiB, the goal's size) and 80 %
        of hopper's max."""
        for size, targets in plan:
            hmax = self.max_of("hopper", size) or 0
            p80 = int(hmax * 0.8 // 100 * 100)
            for rate in sorted({1000, 10000, p80}):
                if rate <= 0 or (rate > hmax and size != 1024):
                    self.results.setdefault("skipped", []).append(
                        {"size": size, "rate": rate,
                         "why": "above hopper's max of %.0f msg/s" % hmax})
                    log("skip %s at %d msg/s: above hopper's max %.0f"
                        % (SIZE_NAMES[size], rate, hmax))
                    continue
                for t in targets:
                    rec = self.load_run(t, size, rate, duration=self.fixed_duration,
                                        warmup=2.0 if not self.smoke else 0.3)
                    rec["hopper_max"] = hmax
                    rec["p80"] = rate == p80

    # ---- message contracts ----

    def contract_phase(self, rate=CONTRACT_RATE, max_rounds=None, fixed_rounds=None):
        """Message contracts against no contract, in one run, on a hopper of
        their own (see CONTRACT_TARGETS): the run's registry gets a JSON
        Schema under <json topic>-value and an Avro schema under
        <avro topic>-value, then contract_runs. A hopper that refuses the
        Avro contract (before hopper checks Avro) runs without that target,
        which the results say."""
        c = self.results["contracts"] = {
            "size": CONTRACT_SIZE, "rate": rate, "runs": [], "skipped": [],
            "targets": list(CONTRACT_TARGETS), "min_share": CONTRACT_MIN_SHARE,
            "p95_ms": CONTRACT_P95_MS,
            "contracts": {t: CONTRACT_YAML[t] for t in CONTRACT_YAML},
            "schemas": {"json": CONTRACT_JSON_SCHEMA, "avro": CONTRACT_AVRO_SCHEMA}}
        self.registry_ready()
        c["subjects"] = {}
        for t, schema, kind in (("hopper-json", CONTRACT_JSON_SCHEMA, "JSON"),
                                ("hopper-avro", CONTRACT_AVRO_SCHEMA, "AVRO")):
            subject = self.target_topic(t) + "-value"
            c["subjects"][t] = {"subject": subject, "type": kind,
                                "id": self.registry_register(subject, schema, kind)}
        for t in (self.topic_json, self.topic_avro):
            self.kafka("delete", "--topic", t)
            self.create_topic(t)
            self.contract_topics.append(t)
        log("registry %s: %s" % (self.registry_url, ", ".join(
            "%s id %d" % (v["subject"], v["id"]) for v in c["subjects"].values())))
        targets = self.start_contract_hopper(c)
        try:
            self.contract_runs(targets, rate, c, max_rounds or self.rounds,
                               fixed_rounds or self.rounds)
        finally:
            self.stop_hopper()

    def start_contract_hopper(self, c):
        """A hopper with every contracted exchange; if it will not start
        with the Avro contract (its log names the Avro subject), one without
        it. Returns the targets it serves."""
        contracted = [t for t in CONTRACT_TARGETS if t != "hopper"]
        try:
            self.start_hopper("contracts", contracts=contracted)
            return list(CONTRACT_TARGETS)
        except BenchError as e:
            proc, logf, _ = self.all_hoppers[-1]
            if proc.poll() is None:
                raise
            logf.close()
            self.hopper = None
            with open(logf.name) as f:
                # The line without its time and level, the config's path
                # relative to the repository.
                why = [re.sub(r"^\S+ [A-Z]+ ", "", l.strip()).replace(ROOT + "/", "")
                       for l in f if c["subjects"]["hopper-avro"]["subject"] in l]
            if not why:
                raise BenchError("hopper with the contracts did not start (%s); its log: %s"
                                 % (e, logf.name))
        c["skipped"].append({"target": "hopper-avro", "why": why[-1],
                             "hopper_exit": proc.returncode})
        log("hopper refused the Avro contract (exit %s): %s" % (proc.returncode, why[-1]))
        log("running the contracts without hopper-avro")
        self.start_hopper("contracts-no-avro", contracts=["hopper-json"])
        return ["hopper", "hopper-json"]

    def contract_runs(self, targets, rate, c, max_rounds, fixed_rounds):
        """Max-rate runs of 1 KiB JSON bodies to each target, in rounds with
        the order rotating (as max_runs), then runs at rate in rounds the
        same way: throughput, e2e p50/p95/p99 (the timer finds the stamp in
        the JSON text, behind a Confluent frame, or in Avro binary) and
        hopper's CPU per message. Every target publishes the same bodies."""
        for rnd in range(max_rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                rec = self.load_run(t, CONTRACT_SIZE, 0, duration=self.max_duration,
                                    json_body=True, into=c["runs"])
                rec["round"] = rnd
        for rnd in range(fixed_rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                rec = self.load_run(t, CONTRACT_SIZE, rate, duration=self.fixed_duration,
                                    warmup=0.3 if self.smoke else 2.0, json_body=True,
                                    into=c["runs"])
                rec["round"] = rnd

    def perftest_finish(self, name, p, rec, seconds, out):
        try:
            text, _ = p.communicate(timeout=seconds + 90)
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
        m = re.search(r"sending rate avg: (\d+) msg/s", text)
        c = re.search(r"confirm latency min/median/75th/95th/99th "
                      r"(\d+)/(\d+)/(\d+)/(\d+)/(\d+) (ms|µs|us)", text)
        rec["rc"] = p.returncode
        rec["send_rate"] = int(m.group(1)) if m else None
        if c:
            scale = 1.0 if c.group(6) == "ms" else 0.001
            rec["confirm_ms"] = [int(x) * scale for x in c.groups()[:5]]
        else:
            rec["confirm_ms"] = None
        if "cpu0" in rec:
            rec["hopper_cpu_s"] = round(proc_cpu(self.hopper.pid) - rec.pop("cpu0"), 3)
        if not m:
            rec["tail"] = text[-600:]
        out[name] = rec
        c = rec["confirm_ms"]
        log("PerfTest -> %-14s %s msg/s, confirm p50/p95/p99 %s ms" % (
            name, rec["send_rate"], c and [c[1], c[3], c[4]]))

    def perftest(self, seconds, parallel=False):
        if not self.fetch_perftest():
            self.results["perftest"] = None
            return
        out = {}
        cp = os.path.join(self.perftest_dir(), "*")
        java = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", cp,
                "com.rabbitmq.perf.PerfTest"]
        common = ["-x", "1", "-c", "1000", "-s", "1024", "-z", seconds, "-f", "persistent"]
        cases = {
            "hopper": ["-h", "amqp://guest:guest@127.0.0.1:%d" % self.hopper_port, "-y", "0",
                       "-e", "bench", "-t", "topic", "-k", "perftest", "-sb"],
            "rabbit-classic": ["-h", "amqp://guest:guest@127.0.0.1:%d" % self.rabbit_port, "-y",
                               "1", "-u", "perftest-classic", "-qa", "x-queue-type=classic",
                               "-ad", "false"],
        }
        procs = {}
        for name, extra in cases.items():
            rec = {"load_avg": loadavg()}
            if name == "hopper":
                rec["cpu0"] = proc_cpu(self.hopper.pid)
            self.r.note(java + common + extra)
            p = subprocess.Popen([str(c) for c in java + common + extra], env=self.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            procs[name] = (p, rec)
            if not parallel:
                self.perftest_finish(name, p, rec, seconds, out)
        if parallel:
            for name, (p, rec) in procs.items():
                self.perftest_finish(name, p, rec, seconds, out)
        self.results["perftest"] = out

    def perf_profile(self, seconds):
        """perf sampling (cpu-clock) of the running hopper during a max-rate run."""
        perf = shutil.which("perf")
        if not perf:
            self.results["perf"] = None
            return
        data = os.path.join(self.workdir, "perf.data")
        p = self.r.start([perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-p",
                          self.hopper.pid, "-o", data, "--", "sleep", seconds],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rec = self.load_run("hopper", 1024, 0, duration=seconds + 1, warmup=1,
                            purpose="perf", sample_rss=True)
        try:
            p.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        rep = {"run_msgs_per_s": rec["pub"]["msgs_per_s"]}
        for key, sort in (("by_thread", "comm"), ("by_dso", "comm,dso"),
                          ("by_symbol", "dso,sym")):
            r = subprocess.run([perf, "report", "-i", data, "--no-children", "--stdio", "-g",
                                "none", "--sort", sort, "--percent-limit", "0.7"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=120)
            rows = [l.rstrip() for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
            rep[key] = rows[:30]
        self.results["perf"] = rep

    def callgrind_start(self, port=None):
        vg = shutil.which("valgrind")
        if not vg:
            return None
        self.cg_out = os.path.join(self.workdir, "callgrind.out")
        return self.start_hopper("callgrind", wrapper=[vg, "--tool=callgrind",
                                                        "--callgrind-out-file=" + self.cg_out],
                                 port=port, wait=False)

    def callgrind_profile(self, seconds, pre=None):
        """hopper under callgrind at max rate (shorter run): instruction costs."""
        h = pre or self.callgrind_start()
        if h is None:
            self.results["callgrind"] = None
            return
        out = self.cg_out
        self.use_hopper(h, 90)
        time.sleep(0.5 if self.smoke else 2)
        try:
            rec = self.load_run("hopper", 1024, 0, duration=seconds, warmup=1,
                                purpose="callgrind")
        finally:
            self.stop_hopper(timeout=120)
        rep = summarize_callgrind(out)
        rep["run_msgs_per_s"] = rec["pub"]["msgs_per_s"]
        rep["acked"] = rec["pub"]["acked"]
        self.results["callgrind"] = rep

    def teardown(self):
        self.stop_hopper()
        for h in self.all_hoppers:
            if h[0].poll() is None:
                self.stop_hopper(timeout=60, h=h)
        rabbit = None
        if self.rabbit_started:
            if self.rabbit_proc.poll() is None:
                try:
                    self.rabbit_proc.wait(200)
                except subprocess.TimeoutExpired:
                    self.rabbit_proc.kill()
            self.r.note([RABBIT, "stop"], ("BENCH_RABBIT_PORT",))
            rabbit = subprocess.Popen([RABBIT, "stop"], env=self.env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.registry_stop()
        if self.cluster_started:
            for t in ([self.topic_hopper, self.topic_direct] + self.consume_topics
                      + self.contract_topics):
                try:
                    self.kafka("delete", "--topic", t)
                except BenchError as e:
                    log("cannot delete %s: %s" % (t, e))
        if rabbit is not None:
            try:
                rabbit.wait(150)
            except subprocess.TimeoutExpired:
                log("rabbitmq.sh stop did not finish in 150 s")
        if rabbit is not None and rabbit.returncode == 0 and self.own_rabbit_dir:
            shutil.rmtree(os.path.join(ROOT, self.env.get("BENCH_RABBIT_DIR",
                                                          ".cache/rabbitmq-bench")),
                          ignore_errors=True)
        if (self.cluster_started and not self.shared_cluster
                and os.environ.get("BENCH_KEEP_CLUSTER") != "1"):
            try:
                self.cluster("stop")
                if self.own_kafka_data:
                    shutil.rmtree(os.path.join(ROOT, self.env["KAFKA_DATA"]), ignore_errors=True)
            except BenchError as e:
                log(str(e))

    # ---- the two programs ----

    def full(self):
        t0 = time.time()
        self.setup(registry=True)
        self.idle_connections([1000, 10000])
        self.finish_setup()
        self.idle_consumers([100, 1000], 10)
        self.start_hopper("load")
        time.sleep(2)
        self.results["hopper_rss_start_kib"] = proc_mem(self.hopper.pid)[0]
        targets = ["hopper", "direct", "rabbit-classic", "rabbit-quorum"]
        self.max_runs(SIZES, targets, self.rounds)
        self.fixed_runs([(1024, targets), (256, ["hopper"]), (16384, ["hopper"])])
        self.sync_runs(targets, self.rounds)
        self.perftest(15)
        self.perf_profile(8)
        self.stop_hopper()
        self.consume_phase()
        self.linger_runs(LINGER_SWEEP, (1000, 10000))
        try:
            self.contract_phase()
        except BenchError as e:
            # The rest of the benchmark stands without it.
            log("message contracts FAILED: %s" % e)
            self.results["contracts"]["failure"] = str(e)
        self.callgrind_profile(8)
        self.results["elapsed_s"] = round(time.time() - t0)

    def smoke_run(self):
        t0 = time.time()
        self.setup(registry=True)
        # Valgrind starts slowly: let it start while the rest runs.
        cg = self.callgrind_start(port=free_port())
        self.idle_connections([20])
        self.finish_setup()
        self.idle_consumers([20], 1)
        self.start_hopper("load")
        targets = ["hopper", "direct", "rabbit-classic", "rabbit-quorum"]
        for t in targets:
            self.load_run(t, 1024, 500)
        self.sync_runs(targets, 1)
        self.perf_profile(1)
        self.perftest(2, parallel=True)
        self.stop_hopper()
        # Seconds: one max and one fixed-rate run per contract target.
        self.contract_phase(rate=1000, max_rounds=1, fixed_rounds=1)
        self.consume_phase()
        self.callgrind_profile(1, pre=cg)
        self.results["elapsed_s"] = round(time.time() - t0)
        self.check_smoke()

    def contracts_run(self):
        """bench.py contracts: the message contracts alone (no RabbitMQ)."""
        t0 = time.time()
        self.setup(rabbit=False, registry=True)
        self.finish_setup()
        self.contract_phase()
        self.results["elapsed_s"] = round(time.time() - t0)

    def sync_runs(self, targets, rounds):
        """One publisher that waits for each confirm (pika's BlockingConnection
        with confirm_delivery, kombu's confirm_publish): one connection, one
        channel, a window of one, 1 KiB persistent, as fast as confirms come
        back. The direct producer does the same (produce, wait for the
        delivery report: what produce + flush does) with linger.ms 0, the
        Kafka round trip hopper cannot beat. Rounds as in max_runs."""
        for rnd in range(rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for t in order:
                rec = self.load_run(t, 1024, 0, duration=self.max_duration, purpose="sync",
                                    conns=1, chans=1, window=1, direct_linger="0")
                rec["round"] = rnd

    def linger_runs(self, values, rates):
        """hopper and the direct producer at fixed rates of 1 KiB for each
        linger.ms, back to back (a hopper of its own per value; for hopper it
        is the batch producer's): which value hopper should default to."""
        shipped = self.linger
        for linger in values:
            self.linger = str(linger)
            self.start_hopper("linger-%s" % linger)
            for rate in rates:
                for t in ("hopper", "direct"):
                    rec = self.load_run(t, 1024, rate, duration=self.fixed_duration,
                                        purpose="linger")
                    rec["linger_ms"] = linger
            self.stop_hopper()
        self.linger = shipped

    def linger_sweep(self, values, rates):
        """The linger runs alone, on a fresh cluster (bench.py linger)."""
        t0 = time.time()
        self.setup()
        self.finish_setup()
        # Fresh JVMs are slow for a while: warm the brokers up unmeasured.
        self.load_run("direct", 1024, 10000, duration=10.0, purpose="warm-up")
        self.linger_runs(values, rates)
        self.results["elapsed_s"] = round(time.time() - t0)

    def only_run(self):
        """--only: the named parts of the consume phase alone (setup, then
        consume_phase; no publishing runs, no profiles)."""
        t0 = time.time()
        self.setup()
        self.finish_setup()
        self.results["only"] = list(self.parts)
        self.consume_phase(self.parts)
        self.results["elapsed_s"] = round(time.time() - t0)
        if self.smoke:
            self.check_smoke()

    def check_smoke(self):
        """No timing: only that every piece ran and produced numbers."""
        problems = []
        if not self.only:
            self.check_smoke_publishing(problems)
            self.check_smoke_contracts(problems)
        self.check_smoke_consuming(problems)
        self.results["smoke_problems"] = problems
        if problems:
            raise BenchError("smoke found problems:\n  " + "\n  ".join(problems))

    def check_smoke_publishing(self, problems):
        for r in self.results["runs"]:
            name = "%s %s rate %s" % (r["target"], r["size"], r["rate"])
            if r["pub"].get("error"):
                problems.append("%s: %s" % (name, r["pub"]["error"]))
            if r.get("purpose") == "callgrind":
                # Under valgrind on a busy machine the measured window may see
                # nothing; that hopper confirmed at all is what counts here.
                if r["pub"]["acked"] <= 0:
                    problems.append("%s under callgrind: nothing confirmed" % name)
                continue
            if r["pub"]["acked"] <= 0 or r["pub"]["confirm"]["n"] <= 0:
                problems.append("%s: nothing confirmed" % name)
            if r["e2e"]["measured"] <= 0:
                problems.append("%s: the end-to-end timer saw nothing" % name)
        idle = self.results.get("idle", {})
        if not idle.get("rss_kib_20"):
            problems.append("idle connections: no RSS")
        if self.results.get("idle_consumers", {}).get("per_queue_kib") is None:
            problems.append("idle consumers: no per-queue figure")
        pt = self.results.get("perftest")
        if pt is not None:
            for k, v in pt.items():
                if not v.get("send_rate"):
                    problems.append("PerfTest against %s: no result (%s)" % (k, v.get("tail")))
        if self.results.get("perf") is not None and not self.results["perf"].get("by_thread"):
            problems.append("perf: empty report")
        cg = self.results.get("callgrind")
        if cg is not None and not cg.get("self_hopper"):
            problems.append("callgrind: no hopper functions in the profile")

    def check_smoke_contracts(self, problems):
        """Every contract target ran (max and fixed rate) and produced
        numbers: nothing nacked (the bodies pass both schemas), confirms,
        and an end-to-end timer that found the stamps in the records; or it
        was skipped with its reason (Avro, before hopper checks it)."""
        c = self.results.get("contracts")
        if not c:
            problems.append("contracts: did not run")
            return
        skipped = {s["target"]: s for s in c.get("skipped", [])}
        for t in CONTRACT_TARGETS:
            if t in skipped:
                if t != "hopper-avro" or not skipped[t].get("why"):
                    problems.append("contracts: %s skipped (%s)" % (t, skipped[t].get("why")))
                continue
            for rate in (0, c["rate"]):
                rs = [r for r in c["runs"] if r["target"] == t and r["rate"] == rate]
                if not rs:
                    problems.append("contracts: %s at %s did not run" % (t, rate or "max"))
                for r in rs:
                    p, e = r["pub"], r["e2e"]
                    name = "contracts: %s at %s" % (t, rate or "max")
                    if p.get("error") or p["nacked"]:
                        problems.append("%s: %d nacked (%s)" % (name, p["nacked"], p.get("error")))
                    if p["acked"] <= 0 or p["confirm"]["n"] <= 0:
                        problems.append("%s: nothing confirmed" % name)
                    if e["measured"] <= 0:
                        problems.append("%s: the end-to-end timer saw nothing (%d foreign)"
                                        % (name, e["foreign"]))
                    if r.get("hopper_cpu_s") is None:
                        problems.append("%s: no hopper CPU" % name)

    def check_smoke_consuming(self, problems):
        for r in self.results.get("drain", []):
            c = r["consume"]
            if c.get("error") or c["of_run"] != r["n"]:
                problems.append("drain %s prefetch %d: %d of %d delivered (%s)"
                                % (r["target"], r["prefetch"], c["of_run"], r["n"], c.get("error")))
        want, want_deliver = set(), set()
        if "durable" in self.parts:
            want |= {(t, pf) for t in CONSUME_TARGETS for pf in PREFETCHES}
            want_deliver |= set(CONSUME_TARGETS)
        if "transient" in self.parts:
            want |= {(t, 100) for t in TRANSIENT_TARGETS}
            want_deliver |= set(TRANSIENT_TARGETS)
        missing = want - {(r["target"], r["prefetch"]) for r in self.results.get("drain", [])}
        if missing:
            problems.append("drain: did not run: %s" % ", ".join(
                "%s prefetch %d" % m for m in sorted(missing)))
        for r in self.results.get("deliver", []):
            x, p = r["e2e"], r["pub"]
            # A transient message is delivered from memory: every one sent
            # in the measured window must arrive.
            short = r["target"] in TRANSIENT_TARGETS and x["measured"] != p["measured_sent"]
            if p.get("error") or x.get("error") or x["measured"] <= 0 or short:
                problems.append("deliver %s at %d msg/s: %d of %d delivered (%s)"
                                % (r["target"], r["rate"], x["measured"], p["measured_sent"],
                                   p.get("error") or x.get("error")))
        missing = want_deliver - {r["target"] for r in self.results.get("deliver", [])}
        if missing:
            problems.append("deliver: did not run: %s" % ", ".join(sorted(missing)))
        if "celery" in self.parts:
            got = {r["target"] for r in self.results.get("celery", [])}
            if got != set(CELERY_TARGETS):
                problems.append("celery: did not run against %s"
                                % ", ".join(sorted(set(CELERY_TARGETS) - got)))
            for r in self.results.get("celery", []):
                c = r["client"]
                if (c.get("error") or (c.get("rtt_ms") or {}).get("n") != self.celery_seq
                        or c.get("conc_done") != self.celery_total):
                    problems.append("celery %s: %s of %d round trips, %s of %d concurrent (%s)"
                                    % (r["target"], (c.get("rtt_ms") or {}).get("n"),
                                       self.celery_seq, c.get("conc_done"), self.celery_total,
                                       c.get("error")))


def render_only(out):
    import report
    raw = os.path.splitext(out)[0] + ".json"
    with open(raw) as f:
        res = json.load(f)
    cg = os.path.join(os.environ.get("BENCH_BIN", os.path.join(ROOT, "build", "bench")),
                      "work", "callgrind.out")
    if res.get("callgrind") and os.path.exists(cg):
        res["callgrind"].update(summarize_callgrind(cg))
        with open(raw, "w") as f:
            json.dump(res, f, indent=1)
    render = report.render_contracts if res.get("mode") == "contracts" else report.render
    with open(out, "w") as f:
        f.write(render(res, os.path.relpath(raw, ROOT)))
    log("wrote %s" % os.path.relpath(out, ROOT))
    return 0


def run_linger(b, out):
    values = [int(v) for v in b.args.linger.split(",")] if b.args.linger else LINGER_SWEEP
    rc = 0
    try:
        b.linger_sweep(values, (1000, 10000))
    except (BenchError, KeyboardInterrupt) as e:
        log("FAILED: %s" % e)
        rc = 1
    finally:
        b.teardown()
    import report
    lr = [r for r in b.results["runs"] if r.get("purpose") == "linger"]
    text = ("# linger.ms sweep\n\nWritten by `tests/bench/bench.py linger` on %s (hopper %s); "
            "1 KiB messages, %d connections x %d channels, latencies in ms.\n\n%s"
            % (b.results["started"], b.results.get("facts", {}).get("git", "?"), b.conns, b.chans, report.linger_table(lr)))
    with open(out, "w") as f:
        f.write(text)
    print(text)
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("full", "smoke", "render", "linger", "contracts"),
                    help="render: rewrite the report from its raw JSON (after report.py "
                         "or NOTES.md changed); linger: hopper and the direct producer "
                         "at 1,000 and 10,000 msg/s for several linger.ms values; "
                         "contracts: 1 KiB JSON without a contract, with a JSON Schema "
                         "and with an Avro contract (tests/bench/CONTRACTS.md)")
    ap.add_argument("--linger", help="linger: the linger.ms values to compare, e.g. 1,50 "
                                     "[%s]" % ",".join(map(str, LINGER_SWEEP)))
    ap.add_argument("--out", help="report path")
    ap.add_argument("--only", help="full, smoke: only these parts of the consume phase, "
                                   "comma-separated (%s), on the mode's cluster and RabbitMQ; "
                                   "the report goes to build/bench/ONLY.md unless --out says "
                                   "otherwise" % ",".join(CONSUME_PARTS))
    args = ap.parse_args()
    if args.only and (args.mode not in ("full", "smoke")
                      or not set(args.only.split(",")) <= set(CONSUME_PARTS)):
        ap.error("--only takes %s, with full or smoke" % ",".join(CONSUME_PARTS))
    if args.mode == "render":
        return render_only(args.out or os.path.join(HERE, "RESULTS.md"))
    smoke = args.mode == "smoke"
    b = Bench(args, smoke)
    if args.mode == "linger":
        return run_linger(b, args.out or os.path.join(b.bin, "LINGER.md"))
    # A partial run never overwrites RESULTS.md unless told to.
    out = args.out or (os.path.join(b.bin, "ONLY.md") if args.only
                       else os.path.join(b.bin, "SMOKE.md") if smoke
                       else os.path.join(HERE, "CONTRACTS.md") if args.mode == "contracts"
                       else os.path.join(HERE, "RESULTS.md"))
    rc = 0
    try:
        if args.only:
            b.only_run()
        elif args.mode == "contracts":
            b.contracts_run()
        elif smoke:
            b.smoke_run()
        else:
            b.full()
    except (BenchError, KeyboardInterrupt) as e:
        log("FAILED: %s" % e)
        b.results["failure"] = str(e)
        rc = 1
    except Exception as e:  # a bug here: still tear everything down
        import traceback
        traceback.print_exc()
        b.results["failure"] = repr(e)
        rc = 1
    finally:
        b.teardown()
        b.results["commands"] = b.r.commands
        raw = os.path.splitext(out)[0] + ".json"
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(raw, "w") as f:
            json.dump(b.results, f, indent=1)
        if rc == 0:
            import report
            with open(out, "w") as f:
                render = (report.render_partial if args.only
                          else report.render_contracts if args.mode == "contracts"
                          else report.render)
                f.write(render(b.results, os.path.relpath(raw, ROOT)))
            log("wrote %s (raw: %s)" % (os.path.relpath(out, ROOT), os.path.relpath(raw, ROOT)))
    return rc


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
