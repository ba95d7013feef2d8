#!/usr/bin/env python3
"""bridge.py - the RabbitMQ -> Kafka bridge benchmark (issue 14): hopper's
bridge (`rabbit.upstream`) against what users would otherwise run for the
job, Kafka Connect with jcustenborder's RabbitMQ source connector
(tests/bench/connect.sh), on one machine, one Kafka cluster, one RabbitMQ.

    bridge.py full  [--systems hopper,connect] [--out tests/bench/BRIDGE.md]
    bridge.py short [--systems hopper]         [--out build/bench/BRIDGE-SHORT.md]
    bridge.py render [--out tests/bench/BRIDGE.md]   the report again from its JSON

For each system, one after the other:
  drain    a durable queue holding a backlog of persistent 1 KiB messages
           (full: 1,000,000; short: 20,000), filled with confirms before the
           system starts; throughput = messages / (last record's arrival in
           Kafka - first record's), counted by a Kafka consumer reading the
           topic from its start (distinct messages and duplicates by the
           sequence number in each body); the queue must be empty after
  latency  publish -> Kafka record at 1,000 and 10,000 msg/s (full: 20 s
           each, short: 3 s), transient messages (RabbitMQ's persistent confirm
           rate is below 10,000/s here): bench_amqp stamps the scheduled send time into
           each body, bench_kafka consume subtracts it from the receive time;
           a system that falls behind gets up to 120 s (short: 20 s) after
           the publisher stopped to bring the rest in
  RSS      peak VmRSS of the hopper process / the Connect JVM, sampled from
           /proc/PID/status during every run
  loss     a backlog (full: 100,000, short: 20,000) drains; once a third is
           in Kafka the system is SIGKILLed and started again; at the end,
           messages RabbitMQ confirmed vs distinct records in Kafka (lost)
           and records beyond one per message (duplicates)

short is the CI form: hopper only (Connect's JVM costs CI minutes), and only
when the binary has the bridge (`hopper -t` accepts a config with
rabbit.upstream); it then checks the drains lost nothing and left nothing,
asserting no timing. Without the bridge it says so and exits 0.

Environment: HOPPER (the binary, default build/hopper; copied first),
BENCH_BIN (bench_amqp, bench_kafka; default build/bench). RabbitMQ: a private
node (tests/bench/rabbitmq.sh) with BENCH_RABBIT_PORT 5972,
BENCH_RABBIT_EPMD 4489, BENCH_RABBIT_NODE hopperbridgebench@localhost,
BENCH_RABBIT_DIR .cache/rabbitmq-bridgebench (short: free ports, node
hopperbridgeshort@localhost, .cache/rabbitmq-bridge-short), stopped at the
end. Kafka: contrib/kafka/cluster.sh with the KAFKA_* variables (full:
default ports 9292-9294 and 19292-19294, data .cache/kafka-bridge, started
if down and then stopped; short: the default cluster, 9092-9094, started if
down and left running). Connect's REST port: CONNECT_REST_PORT (18083).
Every child process is bounded in time; all traffic stays on 127.0.0.1.
"""
import argparse
import datetime
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench import (CLUSTER, RABBIT, ROOT, Bench, BenchError, Runner, free_port,  # noqa: E402
                   last_json, loadavg, log, proc_cpu, proc_mem, raise_nofile, stop,
                   wait_port, wait_ready)
import report  # noqa: E402

CONNECT = os.path.join(HERE, "connect.sh")
SYSTEMS = ("hopper", "connect")
NAMES = {"hopper": "hopper (rabbit.upstream)",
         "connect": "Kafka Connect + kafka-connect-rabbitmq"}
RATES = (1000, 10000)
SIZE = 1024
PREFETCH = 1000
# The targets: hopper's drain at least this many times Connect's,
# e2e p95 under this many ms at RATES, RSS under this share of Connect's.
TARGET_RATIO = 2.0
TARGET_P95_MS = 100
TARGET_RSS_SHARE = 0.10

PLANS = {
    "full": {"backlog": 1000000, "rate_s": 20.0, "warmup": 3.0, "loss_n": 100000,
             "fill_conns": 2, "stall": 60, "hold": 2400, "catch_up": 120, "first": 180},
    "short": {"backlog": 20000, "rate_s": 3.0, "warmup": 0.5, "loss_n": 20000,
              "fill_conns": 1, "stall": 20, "hold": 120, "catch_up": 20, "first": 45},
}


class Lines:
    """A child's stdout read line by line with a timeout; keeps what a
    timeout left half read."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def next(self, timeout):
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode()
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


class Bridge:
    def __init__(self, args):
        self.mode = args.mode
        self.plan = PLANS[self.mode]
        self.short = self.mode == "short"
        self.systems = [s for s in args.systems.split(",") if s]
        for s in self.systems:
            if s not in SYSTEMS:
                raise BenchError("unknown system %r (%s)" % (s, ", ".join(SYSTEMS)))
        self.bin = os.path.abspath(os.environ.get("BENCH_BIN", os.path.join(ROOT, "build",
                                                                             "bench")))
        self.workdir = os.path.join(self.bin, "work-bridge-" + self.mode)
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        env = dict(os.environ)
        if self.short:
            env.setdefault("KAFKA_BROKER_PORTS", "9092 9093 9094")
            env.setdefault("KAFKA_CONTROLLER_PORTS", "19092 19093 19094")
            env.setdefault("KAFKA_DATA", ".cache/kafka-cluster")
            env.setdefault("BENCH_RABBIT_PORT", str(free_port()))
            env.setdefault("BENCH_RABBIT_DIST_PORT", str(free_port()))
            env.setdefault("BENCH_RABBIT_EPMD", "4490")
            env.setdefault("BENCH_RABBIT_NODE", "hopperbridgeshort@localhost")
            env.setdefault("BENCH_RABBIT_DIR", ".cache/rabbitmq-bridge-short")
        else:
            env.setdefault("KAFKA_BROKER_PORTS", "9292 9293 9294")
            env.setdefault("KAFKA_CONTROLLER_PORTS", "19292 19293 19294")
            env.setdefault("KAFKA_DATA", ".cache/kafka-bridge")
            env.setdefault("BENCH_RABBIT_PORT", "5972")
            env.setdefault("BENCH_RABBIT_EPMD", "4489")
            env.setdefault("BENCH_RABBIT_NODE", "hopperbridgebench@localhost")
            env.setdefault("BENCH_RABBIT_DIR", ".cache/rabbitmq-bridgebench")
        env.setdefault("CONNECT_REST_PORT", "18083")
        env["CONNECT_RUN"] = os.path.join(self.workdir, "connect")
        env["CONNECT_PREFETCH"] = str(PREFETCH)
        self.env = env
        self.r = Runner(env)
        self.brokers = self.r.run([CLUSTER, "bootstrap"], 30, quiet=True,
                                  env_keys=("KAFKA_BROKER_PORTS",)).stdout.strip()
        env["CONNECT_BOOTSTRAP"] = self.brokers
        env["CONNECT_RABBIT_PORT"] = env["BENCH_RABBIT_PORT"]
        self.rabbit_port = int(env["BENCH_RABBIT_PORT"])
        self.run_id = int(time.time()) % 1000000 * 100
        self.results = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "mode": self.mode, "plan": self.plan, "systems": self.systems,
                        "drain": [], "latency": [], "loss": [], "skipped": {}}
        self.cluster_started = False
        self.rabbit_started = False
        self.hopper_bin = None
        self.hopper = None  # (Popen, log file) of the running hopper
        self.hopper_cfg = None
        self.connect_up = False
        self.topics = []

    # ---- helpers ----

    def tool(self, name):
        return os.path.join(self.bin, name)

    def next_run(self):
        self.run_id += 1
        return self.run_id

    def kafka(self, *args, timeout=90, check=True):
        return self.r.run([self.tool("bench_kafka")] + list(args) + ["--brokers", self.brokers],
                          timeout, check=check, quiet=True)

    def create_topic(self, t):
        # Deletion is asynchronous in Kafka: retry creation briefly.
        for _ in range(20):
            p = self.kafka("create", "--topic", t, "--partitions", 3, "--rf", 3, "--min-isr", 2,
                           check=False)
            if p.returncode == 0:
                self.topics.append(t)
                return
            time.sleep(1)
        raise BenchError("cannot create topic %s: %s" % (t, p.stderr[-500:]))

    def delete_topic(self, t):
        self.kafka("delete", "--topic", t, check=False)
        if t in self.topics:
            self.topics.remove(t)

    def depth(self, q, delete=True):
        """Ready messages left in q (then deletes it)."""
        p = self.r.run([self.tool("bench_amqp"), "depth", "--port", self.rabbit_port, "--queue", q]
                       + (["--delete"] if delete else []), 60, check=False, quiet=True)
        rec = last_json(p.stdout, "bench_amqp depth")
        if rec.get("error"):
            raise BenchError("queue %s: %s" % (q, rec["error"]))
        return rec["messages"]

    def fill(self, q, n, run):
        """n persistent 1 KiB messages into durable queue q (declared and
        purged first), every one confirmed."""
        conns = min(self.plan["fill_conns"], n)
        t0 = time.time()
        p = self.r.run([self.tool("bench_amqp"), "publish", "--port", self.rabbit_port,
                        "--exchange", "", "--routing-key", q, "--queue", q, "--count", n,
                        "--conns", conns, "--chans", 2, "--window", 500, "--rate", 0, "--size",
                        SIZE, "--warmup", 0, "--duration", 3000, "--drain", 60, "--run", run,
                        "--persistent"], 3600)
        wall = time.time() - t0
        rec = last_json(p.stdout, "queue filler")
        if rec["acked"] != n or rec.get("error"):
            raise BenchError("filling %s: %d of %d confirmed (%s)"
                             % (q, rec["acked"], n, rec.get("error")))
        log("filled %s: %d messages in %.1f s (%.0f msg/s)" % (q, n, wall, n / wall))
        return {"acked": rec["acked"], "conns": conns, "wall_s": round(wall, 3),
                "msgs_per_s": round(n / wall, 1)}

    def counter(self, topic, run, n, senders):
        """bench_kafka reading topic from its start until n distinct
        messages of run are in; returns it once it is ready."""
        p = self.r.start([self.tool("bench_kafka"), "consume", "--brokers", self.brokers,
                          "--topic", topic, "--run", run, "--from-start", "--count", n,
                          "--senders", senders, "--stall", self.plan["stall"], "--progress", 0.2,
                          "--hold", self.plan["hold"], "--settle", 1])
        wait_ready(p, "counter on " + topic)
        return p

    # ---- the systems ----

    def hopper_config(self, path, queue, topic, port):
        with open(path, "w") as f:
            f.write("""# Written by tests/bench/bridge.py for one run.
listen:
  address: 127.0.0.1
  port: %(port)d
kafka:
  bootstrap_servers: "%(brokers)s"
  topic_partitions: 3
  replication_factor: 3
  min_insync_replicas: 2
  properties:
    socket.nagle.disable: true
default_route: false
routes:
  - exchange: ""
    routing_key: "#"
    topic: %(topic)s
    key: none
rabbit:
  enabled: true
  upstream:
    - name: bench
      # No trailing slash: "amqp://h:p/" names the vhost "" (AMQP URI
      # spec), which RabbitMQ refuses; without a path it is "/".
      nodes: ["amqp://guest:guest@127.0.0.1:%(rport)d"]
      queue: %(queue)s
      prefetch: %(prefetch)d
""" % {"port": port, "brokers": self.brokers, "topic": topic, "rport": self.rabbit_port,
                "queue": queue, "prefetch": PREFETCH})

    def hopper_has_bridge(self):
        """(True, None) if hopper -t accepts a config with rabbit.upstream,
        else (False, what it said)."""
        cfg = os.path.join(self.workdir, "hopper-check.yaml")
        self.hopper_config(cfg, "bench-check", "bench-check", free_port())
        p = self.r.run([self.hopper_bin, "-t", "-c", cfg], 30, check=False, quiet=True)
        if p.returncode == 0:
            return True, None
        return False, (p.stderr or p.stdout).strip().splitlines()[-1:] or ["exit %d"
                                                                            % p.returncode]

    def start_system(self, system, queue, topic):
        """Starts system draining queue into topic; returns its pid."""
        if system == "hopper":
            if self.hopper_cfg is None or self.hopper_cfg[1:] != (queue, topic):
                port = free_port()
                cfg = os.path.join(self.workdir, "hopper-%s.yaml" % queue)
                self.hopper_config(cfg, queue, topic, port)
                self.hopper_cfg = (cfg, queue, topic, port)
            cfg, _, _, port = self.hopper_cfg
            logf = open(os.path.join(self.workdir, "hopper-%s.log" % queue), "a")
            proc = self.r.start([self.hopper_bin, "-c", cfg], stdout=None, stderr=logf,
                                preexec=raise_nofile)
            self.hopper = (proc, logf)
            wait_port(port, 30, proc)
            return proc.pid
        self.env["CONNECT_QUEUE"] = queue
        self.env["CONNECT_TOPIC"] = topic
        self.r.run([CONNECT, "start"], 200, env_keys=("CONNECT_QUEUE", "CONNECT_TOPIC"))
        self.connect_up = True
        return int(self.r.run([CONNECT, "pid"], 10, quiet=True).stdout.strip())

    def stop_system(self, system):
        if system == "hopper":
            if self.hopper is None:
                return
            proc, logf = self.hopper
            self.hopper = None
            stop(proc, 30)
            logf.close()
            return
        if self.connect_up:
            self.r.run([CONNECT, "stop"], 90)
            self.connect_up = False

    def kill_system(self, system):
        """SIGKILL, as a crash would."""
        if system == "hopper":
            proc, logf = self.hopper
            self.hopper = None
            proc.kill()
            proc.wait(10)
            logf.close()
            return
        self.r.run([CONNECT, "kill"], 30)
        self.connect_up = False

    # ---- the runs ----

    def watch(self, counter, pid, timeout, on_progress=None):
        """Reads counter's progress lines until its JSON line, sampling
        pid's VmRSS; on_progress(distinct) may return a new pid. Returns
        (result, peak VmRSS KiB)."""
        lines = Lines(counter)
        peak = 0
        deadline = time.time() + timeout
        # A system that never delivers anything fails the run early.
        first_by, seen_any = time.time() + self.plan["first"], False
        while time.time() < deadline:
            if not seen_any and time.time() > first_by:
                stop(counter, 5)
                raise BenchError("no record in Kafka %ss after the system started"
                                 % self.plan["first"])
            try:
                peak = max(peak, proc_mem(pid)[0])
            except OSError:
                pass
            line = lines.next(0.25)
            if line is None:
                if counter.poll() is not None and not lines.buf:
                    break
                continue
            if line.startswith("{"):
                counter.wait(10)
                return json.loads(line), peak
            if line.startswith("progress "):
                distinct = int(line.split()[1])
                seen_any = seen_any or distinct > 0
                if on_progress:
                    pid = on_progress(distinct) or pid
        stop(counter, 5)
        raise BenchError("counter gave no result within %ss" % timeout)

    def backlog(self, kind, system, n):
        """A topic and a queue of n messages for one run, and the counter
        reading the topic: (run, queue = topic, fill record, counter)."""
        run = self.next_run()
        q = "bridge-%s-%s-%d" % (kind, system, run)
        self.create_topic(q)
        fill = self.fill(q, n, run)
        return run, q, fill, self.counter(q, run, n, fill["conns"])

    def drain_run(self, system, n):
        _, q, fill, counter = self.backlog("drain", system, n)
        topic = q
        la = loadavg()
        t0 = time.monotonic_ns()
        pid = self.start_system(system, q, topic)
        try:
            res, peak = self.watch(counter, pid, self.plan["hold"] + 30)
            rss, hwm = proc_mem(pid)
            cpu = proc_cpu(pid)
        finally:
            self.stop_system(system)
        left = self.depth(q)
        self.delete_topic(topic)
        drain_s = (res["all_ns"] - res["first_ns"]) / 1e9 if res["all_ns"] else None
        rec = {"system": system, "n": n, "load_avg": la, "fill": fill, "count": res,
               "startup_s": round((res["first_ns"] - t0) / 1e9, 3) if res["first_ns"] else None,
               "drain_s": round(drain_s, 3) if drain_s else None,
               "msgs_per_s": round((res["distinct"] - 1) / drain_s, 1) if drain_s else None,
               "total_s": round((res["all_ns"] - t0) / 1e9, 3) if res["all_ns"] else None,
               "distinct": res["distinct"], "duplicates": res["duplicates"],
               "left_in_queue": left, "rss_peak_kib": max(peak, rss), "hwm_kib": hwm,
               "cpu_s": round(cpu, 2)}
        if rec["total_s"]:
            rec["msgs_per_s_total"] = round(n / rec["total_s"], 1)
        self.results["drain"].append(rec)
        log("drain %-8s %d -> %s msg/s (first record %.1f s after start, %s s in all), "
            "%d/%d distinct, %d duplicates, %d left, RSS peak %.0f MiB"
            % (system, n, rec["msgs_per_s"], rec["startup_s"] or -1, rec["total_s"],
               res["distinct"], n, res["duplicates"], left, rec["rss_peak_kib"] / 1024))
        return rec

    def latency_run(self, system, rate):
        run, primer = self.next_run(), self.next_run()
        q = "bridge-rate-%s-%d" % (system, run)
        topic = q
        self.create_topic(topic)
        # Declares (and purges) the queue and puts a few unmeasured messages
        # in: the system starts on a queue that exists, and the measured
        # publisher starts once they came through.
        self.r.run([self.tool("bench_amqp"), "publish", "--port", self.rabbit_port, "--exchange",
                    "", "--routing-key", q, "--queue", q, "--count", 20, "--rate", 0,
                    "--warmup", 0, "--duration", 30, "--run", primer, "--persistent"], 60)
        pid = self.start_system(system, q, topic)
        try:
            p = self.r.run([self.tool("bench_kafka"), "consume", "--brokers", self.brokers,
                            "--topic", topic, "--run", primer, "--from-start", "--count", 20,
                            "--stall", 30, "--hold", self.plan["first"], "--settle", 0.1],
                           self.plan["first"] + 30)
            pr = last_json(p.stdout, "primer counter")
            if pr["distinct"] != 20:
                raise BenchError("%s: %d of 20 primer messages came through"
                                 % (system, pr["distinct"]))
            timer = self.r.start([self.tool("bench_kafka"), "consume", "--brokers", self.brokers,
                                  "--topic", topic, "--run", run, "--hold", 900, "--settle", 1,
                                  "--progress", 0.25])
            wait_ready(timer, "end-to-end timer on " + topic)
            lines = Lines(timer)
            la = loadavg()
            gen = self.r.start([self.tool("bench_amqp"), "publish", "--port", self.rabbit_port,
                                "--exchange", "", "--routing-key", q, "--conns", 2, "--chans", 2,
                                "--window", 1024, "--rate", rate, "--size", SIZE, "--duration",
                                self.plan["rate_s"], "--warmup", self.plan["warmup"], "--run",
                                run])
            peak = 0
            limit = time.time() + self.plan["rate_s"] + self.plan["warmup"] + 90
            out = None
            while time.time() < limit:
                peak = max(peak, proc_mem(pid)[0])
                while lines.next(0) is not None:
                    pass  # the timer's progress, read so its pipe never fills
                try:
                    out, _ = gen.communicate(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if out is None:
                stop(gen, 5)
                stop(timer, 5)
                raise BenchError("publisher at %d msg/s did not finish" % rate)
            pub = last_json(out, "publisher (exit code %s)" % gen.returncode)
            # A system that fell behind gets up to catch_up seconds (no
            # progress for 15 s ends it sooner) to bring the rest in; what
            # has not arrived then is reported as missing.
            measured, last_change = 0, time.time()
            deadline = time.time() + self.plan["catch_up"]
            while measured < pub["measured_sent"] and time.time() < deadline \
                    and time.time() - last_change < 15:
                peak = max(peak, proc_mem(pid)[0])
                line = lines.next(0.25)
                if line and line.startswith("progress "):
                    m = int(line.split()[2])
                    if m != measured:
                        measured, last_change = m, time.time()
            timer.send_signal(signal.SIGTERM)
            e2e = None
            end = time.time() + 30
            while e2e is None and time.time() < end:
                line = lines.next(1)
                if line and line.startswith("{"):
                    e2e = json.loads(line)
                elif line is None and timer.poll() is not None:
                    break
            stop(timer, 10)
            if e2e is None:
                raise BenchError("end-to-end timer printed no result")
            rss, hwm = proc_mem(pid)
        finally:
            self.stop_system(system)
        self.depth(q)
        self.delete_topic(topic)
        rec = {"system": system, "rate": rate, "load_avg": la, "pub": pub, "e2e": e2e,
               "rss_peak_kib": max(peak, rss), "hwm_kib": hwm}
        self.results["latency"].append(rec)
        x = e2e["e2e"]
        log("latency %-8s %5d msg/s -> p50/p95/p99 %s/%s/%s ms (n %d/%d)%s"
            % (system, rate, x["p50"], x["p95"], x["p99"], e2e["measured"],
               pub["measured_sent"], "  ERROR " + pub["error"] if pub.get("error") else ""))
        return rec

    def loss_run(self, system, n):
        _, q, fill, counter = self.backlog("loss", system, n)
        topic = q
        la = loadavg()
        kill = {}

        def on_progress(distinct):
            if kill or distinct < n // 3:
                return None
            kill["at"] = distinct
            self.kill_system(system)
            log("loss %s: SIGKILL with %d of %d in Kafka; starting it again"
                % (system, distinct, n))
            t = time.monotonic_ns()
            pid = self.start_system(system, q, topic)
            kill["restart_s"] = round((time.monotonic_ns() - t) / 1e9, 3)
            return pid

        pid = self.start_system(system, q, topic)
        try:
            res, peak = self.watch(counter, pid, self.plan["hold"] + 120, on_progress)
        finally:
            self.stop_system(system)
        left = self.depth(q)
        self.delete_topic(topic)
        rec = {"system": system, "n": n, "load_avg": la, "fill": fill, "count": res,
               "published": fill["acked"], "killed_at": kill.get("at"),
               "restart_s": kill.get("restart_s"), "distinct": res["distinct"],
               "lost": fill["acked"] - res["distinct"], "duplicates": res["duplicates"],
               "left_in_queue": left, "stalled": res["stalled"]}
        self.results["loss"].append(rec)
        log("loss %-8s %d confirmed -> %d distinct in Kafka (%d lost), %d duplicates, "
            "%d left in the queue" % (system, n, res["distinct"], rec["lost"],
                                      res["duplicates"], left))
        return rec

    # ---- setup and teardown ----

    def cluster_up(self):
        """True if three brokers serve at the bootstrap addresses (kcat), as
        bench.py asks, so a cluster another checkout started is used, not
        started again on busy ports; else cluster.sh status."""
        if Bench.cluster_serving(self):
            return True
        return self.r.run([CLUSTER, "status"], 60, check=False, quiet=True,
                          env_keys=("KAFKA_BROKER_PORTS", "KAFKA_CONTROLLER_PORTS",
                                    "KAFKA_DATA")).returncode == 0

    def setup(self):
        if "hopper" in self.systems:
            src = os.path.abspath(os.environ.get("HOPPER", os.path.join(ROOT, "build", "hopper")))
            if not os.path.exists(src):
                raise BenchError("no hopper binary at %s (HOPPER)" % src)
            self.hopper_bin = os.path.join(self.workdir, "hopper")
            shutil.copy2(src, self.hopper_bin)
            ok, why = self.hopper_has_bridge()
            if not ok:
                log("hopper at %s has no bridge (hopper -t on rabbit.upstream: %s); "
                    "skipping hopper" % (src, " ".join(why)))
                self.results["skipped"]["hopper"] = "hopper -t refused rabbit.upstream: %s" \
                    % " ".join(why)
                self.systems.remove("hopper")
        if not self.systems:
            return False
        if "connect" in self.systems:
            self.r.run([CONNECT, "fetch"], 1000)
        log("starting RabbitMQ and Kafka")
        rabbit = subprocess.Popen([RABBIT, "start"], env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        self.r.note([RABBIT, "start"], ("BENCH_RABBIT_PORT", "BENCH_RABBIT_NODE",
                                        "BENCH_RABBIT_DIR"))
        self.rabbit_started = True
        if not self.cluster_up():
            self.r.run([CLUSTER, "start"], 300,
                       env_keys=("KAFKA_BROKER_PORTS", "KAFKA_CONTROLLER_PORTS", "KAFKA_DATA"))
            self.cluster_started = True
        try:
            _, err = rabbit.communicate(timeout=200)
        except subprocess.TimeoutExpired:
            rabbit.kill()
            _, err = rabbit.communicate()
        if rabbit.returncode != 0:
            raise BenchError("RabbitMQ did not start: %s" % (err or "")[-1000:])
        self.facts()
        return True

    def facts(self):
        f = {"cores": os.cpu_count(), "kernel": os.uname().release,
             "kafka_brokers": self.brokers,
             "load_avg_start": open("/proc/loadavg").read().split()[:3]}
        with open("/proc/meminfo") as m:
            f["mem_total_kib"] = int(m.readline().split()[1])
        with open("/proc/cpuinfo") as c:
            f["cpu_model"] = next((l.split(":", 1)[1].strip() for l in c
                                   if l.startswith("model name")), "?")
        if self.hopper_bin:
            f["hopper"] = self.r.run([self.hopper_bin, "-V"], 10, quiet=True).stdout.strip()
            f["hopper_from"] = os.path.abspath(os.environ.get("HOPPER", "build/hopper"))
            # The binary may come from another checkout (a branch under work).
            f["hopper_git"] = subprocess.run(
                ["git", "-C", os.path.dirname(f["hopper_from"]), "describe", "--always",
                 "--dirty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True).stdout.strip()
        f["git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True).stdout.strip()
        if "connect" in self.systems:
            f["connect"] = self.r.run([CONNECT, "version"], 10, quiet=True).stdout.strip()
        f["librdkafka"] = self.r.run([self.tool("bench_kafka"), "version"], 10,
                                     quiet=True).stdout.strip()
        data = self.env["KAFKA_DATA"]
        data = data if data.startswith("/") else os.path.join(ROOT, data)
        try:
            with open(os.path.join(data, "kafka.version")) as kv:
                f["kafka"] = kv.read().strip()
        except OSError:
            f["kafka"] = self.env.get("KAFKA_VERSION", "4.1.1")
        f["rabbitmq"] = self.r.run([RABBIT, "version"], 30, quiet=True).stdout.strip()
        f["erlang"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "erlang-base"],
                                     stdout=subprocess.PIPE, text=True).stdout.strip()
        f["rabbitmq_c"] = subprocess.run(["pkg-config", "--modversion", "librabbitmq"],
                                         stdout=subprocess.PIPE, text=True).stdout.strip()
        jv = subprocess.run(["java", "-version"], stderr=subprocess.PIPE, text=True).stderr
        f["java"] = jv.splitlines()[0] if jv else "?"
        self.results["facts"] = f

    def teardown(self):
        for s in SYSTEMS:
            try:
                self.stop_system(s)
            except BenchError as e:
                log(str(e))
        for t in list(self.topics):
            self.delete_topic(t)
        if self.rabbit_started:
            self.r.run([RABBIT, "stop"], 150, check=False)
        if self.cluster_started and not self.short and os.environ.get("BENCH_KEEP_CLUSTER") != "1":
            self.r.run([CLUSTER, "stop"], 200, check=False,
                       env_keys=("KAFKA_BROKER_PORTS", "KAFKA_CONTROLLER_PORTS", "KAFKA_DATA"))

    # ---- the program ----

    def run(self):
        t0 = time.time()
        if not self.setup():
            log("no system to measure")
            return
        for s in self.systems:
            self.drain_run(s, self.plan["backlog"])
        for rate in RATES:
            for s in self.systems:
                self.latency_run(s, rate)
        for s in self.systems:
            self.loss_run(s, self.plan["loss_n"])
        self.results["elapsed_s"] = round(time.time() - t0)

    def check_short(self):
        """The CI form's assertions: nothing lost, nothing left, every run
        complete. No timing."""
        problems = []
        for r in self.results["drain"] + self.results["loss"]:
            if r["distinct"] != r["n"]:
                problems.append("%s: %d of %d messages reached Kafka" % (r["system"],
                                                                         r["distinct"], r["n"]))
            if r["left_in_queue"]:
                problems.append("%s: %d messages left in the queue" % (r["system"],
                                                                       r["left_in_queue"]))
        for r in self.results["latency"]:
            if r["e2e"]["measured"] != r["pub"]["measured_sent"] or r["pub"].get("error"):
                problems.append("%s at %d msg/s: %d of %d measured messages came through (%s)"
                                % (r["system"], r["rate"], r["e2e"]["measured"],
                                   r["pub"]["measured_sent"], r["pub"].get("error")))
        return problems


# ---- the report ----

def mib(kib):
    return "-" if not kib else "%.0f MiB" % (kib / 1024)


def peak_rss(res, system):
    v = [r["rss_peak_kib"] for k in ("drain", "latency") for r in res.get(k, [])
         if r["system"] == system and r.get("rss_peak_kib")]
    return max(v) if v else None


def of(res, kind, system, rate=None):
    for r in res.get(kind, []):
        if r["system"] == system and (rate is None or r.get("rate") == rate):
            return r
    return None


def targets(res):
    rows = []
    h, c = of(res, "drain", "hopper"), of(res, "drain", "connect")
    if h and c and h["msgs_per_s"] and c["msgs_per_s"]:
        x = h["msgs_per_s"] / c["msgs_per_s"]
        rows.append(["drain throughput: hopper >= %.0fx Connect" % TARGET_RATIO,
                     "%s vs %s msg/s (x%.2f)" % (report.num(h["msgs_per_s"]),
                                                 report.num(c["msgs_per_s"]), x),
                     "met" if x >= TARGET_RATIO else "missed (x%.2f of x%.0f)"
                     % (x, TARGET_RATIO)])
    else:
        rows.append(["drain throughput: hopper >= %.0fx Connect" % TARGET_RATIO,
                     "needs both systems", "not measured"])
    for rate in RATES:
        r = of(res, "latency", "hopper", rate)
        name = "hopper e2e p95 < %d ms at %s msg/s" % (TARGET_P95_MS, report.num(rate))
        if r:
            p95 = r["e2e"]["e2e"]["p95"]
            pub = r["pub"]
            short = pub["msgs_per_s"] < 0.95 * rate
            rows.append([name, "%s ms%s" % (report.ms(p95), (
                " (the publisher reached %s msg/s; RabbitMQ's confirm p95 alone: %s ms)"
                % (report.num(pub["msgs_per_s"]), report.ms(pub["confirm"]["p95"])))
                if short else ""),
                         report.verdict(0 <= p95 < TARGET_P95_MS, p95, TARGET_P95_MS, "ms")])
        else:
            rows.append([name, "-", "not measured"])
    hr, cr = peak_rss(res, "hopper"), peak_rss(res, "connect")
    name = "hopper RSS < 1/%d of Connect's JVM" % round(1 / TARGET_RSS_SHARE)
    if hr and cr:
        rows.append([name, "%s vs %s (%.1f %%)" % (mib(hr), mib(cr), 100.0 * hr / cr),
                     "met" if hr < TARGET_RSS_SHARE * cr else "missed"])
    else:
        rows.append([name, "needs both systems", "not measured"])
    return report.table(["target", "measured", "verdict"], rows)


def render(res, rawpath, command):
    f = res.get("facts", {})
    plan = res["plan"]
    out = []
    w = out.append
    w("# RabbitMQ -> Kafka bridge: hopper against Kafka Connect\n")
    w("Written by `%s` (tests/bench/bridge.py %s) on %s; raw numbers in `%s`. Every number "
      "below comes from this one run. Do not edit by hand.\n"
      % (command, res["mode"], res["started"], rawpath))
    if res.get("skipped"):
        for s, why in res["skipped"].items():
            w("**%s was not measured**: %s.\n" % (NAMES[s], why))
    if res.get("failure"):
        w("**The run failed**: %s\n" % res["failure"])
    la = [r["load_avg"] for k in ("drain", "latency", "loss") for r in res.get(k, [])]
    w("## Machine and versions\n")
    w(report.table(["what", "value"], report.machine_rows(f, la) + [
        ["hopper", f.get("hopper", "not measured")],
        ["hopper binary", f.get("hopper_from", "-")],
        ["hopper source (git)", f.get("hopper_git") or f.get("git", "-")],
        ["benchmark source (git)", f.get("git", "-")],
        ["Kafka Connect (Maven Central, standalone worker, 1 task)", f.get("connect",
                                                                           "not measured")],
        ["Java", f.get("java")],
        ["Kafka (3 KRaft nodes)", "%s at %s" % (f.get("kafka"), f.get("kafka_brokers"))],
        ["librdkafka (hopper, counters, timer)", f.get("librdkafka")],
        ["RabbitMQ (Debian package)", f.get("rabbitmq")],
        ["Erlang (Debian package)", f.get("erlang")],
        ["rabbitmq-c (load generator)", f.get("rabbitmq_c")],
        ["total time", "%s s" % res.get("elapsed_s")],
    ]))
    w("The machine is shared (2 cores; other Kafka clusters and builds ran at the same time, "
      "as the load averages show): absolute numbers move with that load.\n")
    w("## Method\n")
    w("- **Same path for both.** A private RabbitMQ node (durable classic queues, persistent "
      "1 KiB messages published with confirms), the same three-node Kafka cluster (topics of 3 "
      "partitions, replication factor 3, `min.insync.replicas=2`, created before each run), "
      "records without a key. hopper: `rabbit.upstream` draining the queue with prefetch %d, "
      "routed by `routes` (exchange `\"\"`, `key: none`). Connect: "
      "`tests/bench/connect.sh` (ConnectStandalone, one task, `rabbitmq.prefetch.count` %d, "
      "which the connector sets after `basic.consume`, so RabbitMQ does not apply it; the body "
      "as the record value through `ExtractField$Value` and the ByteArrayConverter; Connect's "
      "producer defaults: `acks=all`, one request in flight, `linger.ms` 0; its heap flags as "
      "connect-standalone.sh's, `-Xms256m -Xmx2g`).\n" % (PREFETCH, PREFETCH))
    w("- **Drain.** %s messages filled into the queue before the system starts. A librdkafka "
      "consumer reads the topic from its start and counts the run's distinct messages (by the "
      "sequence number in each body) and duplicates. Throughput = messages / (arrival of the "
      "last distinct message - arrival of the first): JVM or process start-up is not charged "
      "to it; it is shown apart (first record after start). After the system stopped (SIGTERM) "
      "the queue must hold nothing.\n" % report.num(plan["backlog"]))
    w("- **Latency.** bench_amqp (2 connections x 2 channels, confirms on) publishes "
      "*transient* 1 KiB messages (delivery mode 1) into the durable queue, at a fixed total "
      "rate for %.0f s after "
      "%.1f s of warm-up, stamping each body with its *scheduled* send time (CLOCK_MONOTONIC); "
      "a librdkafka consumer assigned at the topic's end takes receive time - stamp. "
      "Transient, because RabbitMQ's confirms of persistent messages wait for its disk (the "
      "drain's fill rate shows that limit on this machine, below 10,000 msg/s), which would "
      "make RabbitMQ, not the bridge, the subject of the 10,000 msg/s run; the bridges treat "
      "both alike. "
      "Percentiles are nearest-rank over every measured message. The system is started on the "
      "queue first and 20 unmeasured messages pass through before the measured publisher "
      "starts. A system that falls behind gets up to %.0f s after the publisher stopped "
      "(less if nothing arrives for 15 s); messages still missing then show in the table's "
      "count, and its percentiles cover only those that arrived (a lower bound).\n"
      % (plan["rate_s"], plan["warmup"], plan["catch_up"]))
    w("- **RSS.** VmRSS of the hopper process or the Connect JVM from /proc/PID/status, "
      "sampled every 0.25 s during each run; the peak over all runs.\n")
    w("- **Loss.** %s messages filled, the system started; once a third of them is in Kafka "
      "the system gets SIGKILL and is started again at once. Lost = confirmed by RabbitMQ but "
      "never in Kafka; duplicates = records beyond one per message.\n"
      % report.num(plan["loss_n"]))
    w("## Targets\n")
    w(targets(res))
    w("## Drain\n")
    rows = []
    for r in res.get("drain", []):
        rows.append([NAMES[r["system"]], report.num(r["n"]), report.num(r["msgs_per_s"]),
                     "%.1f s" % r["drain_s"] if r["drain_s"] else "-",
                     "%.1f s" % r["startup_s"] if r["startup_s"] is not None else "-",
                     report.num(r.get("msgs_per_s_total")),
                     "%s / %s" % (report.num(r["distinct"]), report.num(r["duplicates"])),
                     report.num(r["left_in_queue"]), mib(r["rss_peak_kib"]),
                     "%.1f s" % r["cpu_s"], report.num(r["fill"]["msgs_per_s"])])
    w(report.table(["system", "backlog", "msg/s", "drain time", "first record after start",
                    "msg/s incl. start", "distinct / duplicates", "left in queue",
                    "RSS peak", "CPU (process life)", "fill msg/s"], rows))
    w("## Latency (RabbitMQ publish -> Kafka record)\n")
    rows = []
    for r in res.get("latency", []):
        x = r["e2e"]["e2e"]
        rows.append([NAMES[r["system"]], report.num(r["rate"]), report.num(r["pub"]["msgs_per_s"]),
                     report.ms(r["pub"]["confirm"]["p95"]),
                     report.ms(x["p50"]), report.ms(x["p95"]), report.ms(x["p99"]),
                     report.ms(x["max"]), "%s / %s" % (report.num(r["e2e"]["measured"]),
                                                       report.num(r["pub"]["measured_sent"])),
                     mib(r["rss_peak_kib"])])
    w(report.table(["system", "rate", "published msg/s", "RabbitMQ confirm p95 ms", "p50 ms",
                    "p95 ms", "p99 ms", "max ms", "measured in Kafka / sent", "RSS peak"], rows))
    w("*RabbitMQ confirm p95* is the publisher's own confirm latency (scheduled send time -> "
      "RabbitMQ's basic.ack): when it is large, RabbitMQ did not take the rate in, and that "
      "delay is part of every e2e number in the row.\n")
    w("## Memory\n")
    w(report.table(["system", "peak VmRSS over all runs"],
                   [[NAMES[s], mib(peak_rss(res, s))] for s in res["systems"]]))
    w("## Loss scenario (SIGKILL mid-drain, then restart)\n")
    rows = []
    for r in res.get("loss", []):
        rows.append([NAMES[r["system"]], report.num(r["published"]),
                     report.num(r["killed_at"]),
                     "%.1f s" % r["restart_s"] if r["restart_s"] is not None else "-",
                     report.num(r["distinct"]), report.num(r["lost"]),
                     report.num(r["duplicates"]), report.num(r["left_in_queue"])])
    w(report.table(["system", "confirmed by RabbitMQ", "in Kafka at the kill", "restart took",
                    "distinct in Kafka", "lost", "duplicates", "left in queue"], rows))
    notes = os.path.join(HERE, "BRIDGE-NOTES.md")
    if os.path.exists(notes) and res["mode"] == "full":
        with open(notes) as nf:
            w(nf.read())
    w("## Commands\n")
    w("```\n" + "\n".join(res.get("commands", [])) + "\n```\n")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("full", "short", "render"),
                    help="render: rewrite the report from its raw JSON (after bridge.py or "
                    "BRIDGE-NOTES.md changed)")
    ap.add_argument("--systems", help="comma-separated, of %s [full: both; short: hopper]"
                    % ",".join(SYSTEMS))
    ap.add_argument("--out", help="report path [full: tests/bench/BRIDGE.md; short: "
                    "build/bench/BRIDGE-SHORT.md]")
    ap.add_argument("--command", default=None, help="the command named in the report")
    args = ap.parse_args()
    if args.mode == "render":
        out = args.out or os.path.join(HERE, "BRIDGE.md")
        raw = os.path.splitext(out)[0] + ".json"
        with open(raw) as f:
            res = json.load(f)
        command = args.command or res.get("command") or "make bench-bridge"
        with open(out, "w") as f:
            f.write(render(res, os.path.relpath(raw, ROOT), command))
        log("wrote %s" % os.path.relpath(out, ROOT))
        return 0
    if args.systems is None:
        args.systems = "hopper" if args.mode == "short" else "hopper,connect"
    b = Bridge(args)
    out = args.out or (os.path.join(b.bin, "BRIDGE-SHORT.md") if b.short
                       else os.path.join(HERE, "BRIDGE.md"))
    command = args.command or ("make bench-bridge-short" if b.short else "make bench-bridge")
    b.results["command"] = command
    rc = 0
    try:
        b.run()
        if b.short:
            problems = b.check_short()
            for p in problems:
                log("PROBLEM: " + p)
            rc = 1 if problems else 0
    except (BenchError, KeyboardInterrupt) as e:
        log("FAILED: %s" % (e or "interrupted"))
        b.results["failure"] = str(e) or "interrupted"
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
        if b.results.get("facts"):
            with open(out, "w") as f:
                f.write(render(b.results, os.path.relpath(raw, ROOT), command))
            log("wrote %s (raw: %s)" % (os.path.relpath(out, ROOT), os.path.relpath(raw, ROOT)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
