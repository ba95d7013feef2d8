"""matrix - turns the runner's results into tests/compat/MATRIX.md and the
list of problems that make `make compat` fail."""

import subprocess
import time

# Differences from RabbitMQ that are intended, by (step, detail key). Each
# scenario step whose outcome differs between the two servers is looked up
# here; one that is not found is reported as unexplained (and fails the run).
INTENDED = {
    ("declare", "queue_messages"): "hopper keeps messages in Kafka, not in queues: declare-ok always counts 0 "
    "(README: Queues).",
}

# Standing differences that the scenario exercises without a visible change
# in what the client sees.
NOTES = [
    "**Routing follows `routes`/`default_route`, not bindings.** On RabbitMQ the 1000 messages reach the "
    "scenario's queue through its binding `k.#`; on hopper they go to Kafka topic `compat.<client>.<run>` "
    "(the default route: topic named after the exchange) whether or not a queue is bound. A Kafka topic "
    "keeps messages no queue is bound to, where RabbitMQ would drop them (intended; README: Routing contract).",
    "**Unroutable means no route, not no binding.** The mandatory step publishes to `compat-noroute`: on "
    "RabbitMQ an exchange without bindings, on hopper an exchange with `default_route: false` in the "
    "runner's generated config. Both answer basic.return 312 NO_ROUTE and then basic.ack, and the message "
    "is stored nowhere (the runner checks that topic `compat-noroute` gains no record).",
    "**A confirm means Kafka persisted the record** on min.insync.replicas (2) brokers; on RabbitMQ it means "
    "the queue took it. Same frames, stronger promise; confirms take longer (the `_ms` timings in the logs).",
    "**A durable queue is a Kafka consumer group** (task queues, `--enable-rabbit`; README: Task queues). The "
    "consume step reads the scenario's queue from the group `hopper.%2F.<queue>`, which starts at the queue's "
    "declaration; an ack becomes a committed offset within `rabbit.commit_interval` (200 ms), so on hopper the "
    "step waits 1 s before its closing basic.get, and the runner checks that the group committed the end of "
    "every partition. Transient queues (exclusive, auto-delete, non-durable, server-named) are held in hopper's "
    "memory and never reach Kafka (README: Task queues).",
]

# hopper bugs the compat run found that the scenario no longer meets
# (the runner steps around them until they are fixed); listed in MATRIX.md.
HOPPER_BUGS = []  # both found so far are fixed: feed.c (admin handle), topology_queue_in_kafka


def _relative(path):
    import os

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.relpath(str(path), repo)


def esc(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


class Report:
    def __init__(self, clients, installs, results, kafka, consumed, suites, rabbit_version, hopper_exit,
                 elapsed, logdir, hopper_log):
        self.clients = clients
        self.installs = installs
        self.results = results
        self.kafka = kafka
        self.consumed = consumed  # client -> target -> run.consumed()
        self.suites = suites
        self.rabbit_version = rabbit_version
        self.hopper_exit = hopper_exit
        self.elapsed = elapsed
        self.logdir = logdir
        self.hopper_log = hopper_log

    # ---- comparisons -----------------------------------------------------------------

    def differences(self):
        """[(client, step, hopper text, rabbit text, explanation or None)]"""
        out = []
        for c in self.clients:
            h, r = self.results.get((c.name, "hopper")), self.results.get((c.name, "rabbitmq"))
            if h is None or r is None:
                continue
            for step in c.steps:
                hs, rs = h.steps.get(step), r.steps.get(step)
                if hs is None and rs is None:
                    continue
                if hs is None or rs is None or hs[0] != rs[0]:
                    out.append((c.name, step, hs[1] if hs else "not run", rs[1] if rs else "not run",
                                INTENDED.get((step, "status"))))
                    continue
                keys = {k for k in set(hs[2]) | set(rs[2]) if not k.startswith("_") and k not in ("error", "task_ids")}
                for k in sorted(keys):
                    if hs[2].get(k) != rs[2].get(k):
                        out.append((c.name, step, "%s=%s" % (k, hs[2].get(k)), "%s=%s" % (k, rs[2].get(k)),
                                    INTENDED.get((step, k))))
        return out

    def problems(self):
        p = []
        if "__error__" in self.results:
            p.append("runner error (see the log)")
        if self.hopper_exit != 0:
            p.append("hopper exited with %s after SIGTERM" % self.hopper_exit)
        for c in self.clients:
            if self.installs.get(c.name):
                p.append("%s: install failed: %s" % (c.name, self.installs[c.name][:300]))
                continue
            for target in ("hopper", "rabbitmq"):
                res = self.results.get((c.name, target))
                if res is None:
                    p.append("%s on %s: not run" % (c.name, target))
                    continue
                if res.error:
                    p.append("%s on %s: %s" % (c.name, target, res.error))
                for step in c.steps:
                    if res.status(step) != "ok":
                        p.append("%s on %s: step %s %s %s" % (c.name, target, step, res.status(step),
                                                              res.steps.get(step, (0, ""))[1]))
            for name, chk in self.kafka.get(c.name, {}).items():
                if not chk.ok:
                    p.append("%s: Kafka %s: %s" % (c.name, name, chk.cell()))
            for target, cb in sorted(self.consumed.get(c.name, {}).items()):
                if cb.get("props_equal") is False:
                    p.append("%s: props message as %s delivered it: %s" % (c.name, target, self.consumed_cell(cb)))
        for d in self.differences():
            if d[4] is None:
                p.append("%s: step %s differs from RabbitMQ: hopper %s, RabbitMQ %s" % d[:4])
        for s in self.suites:
            if s.error:
                p.append("suite %s: %s" % (s.name, s.error))
            for t in s.failures():
                if t.classification in ("hopper bug", "unclassified"):
                    p.append("suite %s: %s %s: %s" % (s.name, t.name, t.classification, t.reason))
        return p

    def count_passed(self):
        n = 0
        for c in self.clients:
            res = self.results.get((c.name, "hopper"))
            if res:
                n += sum(1 for s in c.steps if res.status(s) == "ok")
            n += sum(1 for chk in self.kafka.get(c.name, {}).values() if chk.ok)
        return n

    # ---- rendering -------------------------------------------------------------------

    def worker_cell(self, client, target, committed=None):
        """What Celery's worker did on one server (its consume step)."""
        res = self.results.get((client.name, target))
        step = res.steps.get("consume") if res else None
        if step is None:
            return "no worker step"
        d = step[2]
        text = "worker ran %s tasks, results via rpc:// (%s wrong), warm shutdown exit %s" % (
            d.get("results", "?"), d.get("wrong", "?"), d.get("worker_exit", "?"))
        if committed is not None:
            text += "; " + committed.cell()
        return text

    @staticmethod
    def consumed_cell(cb, committed=None):
        """What the consume step saw on one server; `committed`: hopper's
        group check (a Check), if any."""
        if cb is None:
            return ""
        d = cb.get("step")
        if d is None:
            return "not consumed: %s" % cb.get("error", "")[:200]
        parts = ["%s of 1002 consumed" % d.get("count", "?"), "bodies %s" % d.get("bodies", "?"),
                 "1 MiB %s" % d.get("big", "?"), "redelivered %s" % d.get("redelivered", "?"),
                 "basic.get after: %s" % d.get("get", "?")]
        if cb.get("props") is None:
            parts.append("props message MISSING")
        elif cb.get("props_equal"):
            parts.append("props = Kafka's")
        elif cb.get("props_equal") is None:
            parts.append("props message delivered (no Kafka record to compare)")
        else:
            parts.append("props DIFFER from Kafka's: %s" % cb.get("props_diff"))
        if committed is not None:
            parts.append(committed.cell())
        return ", ".join(parts)

    def hopper_version(self):
        import os

        try:
            return subprocess.run([os.environ.get("HOPPER_BIN", "build/hopper"), "-V"], capture_output=True,
                                  text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    def markdown(self):
        L = []
        a = L.append
        a("# Client compatibility matrix")
        a("")
        a("Generated by `make compat` (tests/compat/run.py) on %s in %.0f s; do not edit by hand. "
          "hopper: %s. Reference: RabbitMQ %s (Debian rabbitmq-server). Kafka: the local 3-node cluster "
          "(contrib/kafka). Logs of this run: `%s`." % (
              time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), self.elapsed, esc(self.hopper_version()),
              self.rabbit_version, _relative(self.logdir)))
        a("")
        a("## Scenario")
        a("")
        a("Each cell is **hopper / RabbitMQ**. Steps (tests/compat/README.md): connect with the client's default "
          "mechanism; declare a topic exchange, a durable queue and a binding; publish 1000 messages over two "
          "channels with confirms (in flight together where the client allows); a mandatory message no route "
          "matches (basic.return 312 then ack); a 1 MiB message; a message with nested headers and every basic "
          "property; close; then consume the queue on a new connection (manual acks, prefetch 100) until all 1002 "
          "came, nack `<run>:0` with requeue and see it again redelivered, ack the rest, and after a reconnect "
          "basic.get finds the queue empty; pika and Java then make 3 RPCs with direct reply-to "
          "(`amq.rabbitmq.reply-to`; Java's RpcClient) through a durable request queue. Celery publishes tasks "
          "with `delay()` and `apply_async()` instead (no declare/mandatory/big/props), and its consume step is "
          "a real `celery worker` (prefork, 2 processes) that runs them all, every result coming back through "
          "the `rpc://` backend, then stops warm.")
        a("")
        steps = ["connect", "declare", "publish", "mandatory", "big", "props", "close", "consume", "rpc"]
        a("| client | version | mechanism | " + " | ".join(steps) + " |")
        a("|---|---|---|" + "---|" * len(steps))
        for c in self.clients:
            if self.installs.get(c.name):
                a("| %s | %s | %s | install failed: %s |%s" % (c.name, esc(c.version), c.mechanism,
                                                               esc(self.installs[c.name][:150]), " |" * (len(steps) - 1)))
                continue
            h, r = self.results.get((c.name, "hopper")), self.results.get((c.name, "rabbitmq"))
            mech = c.mechanism
            if h and "connect" in h.steps:
                mech = h.steps["connect"][2].get("mechanism", mech)
            cells = []
            for s in steps:
                if s not in c.steps:
                    cells.append("n/a")
                else:
                    cells.append("%s / %s" % (h.status(s) if h else "not run", r.status(s) if r else "not run"))
            a("| %s | %s | %s | %s |" % (c.name, esc(c.version), mech, " | ".join(cells)))
        a("")
        a("Timings (hopper / RabbitMQ, publish step, ms; 1000 confirms over two channels): " + ", ".join(
            "%s %s/%s" % (c.name, self._detail(c, "hopper", "publish", "_ms"), self._detail(c, "rabbitmq", "publish", "_ms"))
            for c in self.clients if "publish" in c.steps and "declare" in c.steps) + ".")
        a("")
        a("Timings (hopper / RabbitMQ, consume step until all 1002 acked, ms; hopper's include joining the group): "
          + ", ".join("%s %s/%s" % (c.name, self._detail(c, "hopper", "consume", "_ms"),
                                    self._detail(c, "rabbitmq", "consume", "_ms"))
                      for c in self.clients if "consume" in c.steps) + ".")
        a("")
        a("## What hopper wrote to Kafka, and what each server delivered")
        a("")
        a("Checked against README.md's record-format contract: value bytes, key (the routing key), every header "
          "in order (`amqp.exchange`, `amqp.routing_key`, one `amqp.<property>` per property set, application "
          "headers as text/JSON, `amqp.properties` last) computed from the record's own `amqp.properties` by an "
          "independent decoder (tests/compat/amqpprops.py); the props message's decoded properties must equal "
          "what the scenario set. The last two columns are what the client's consume step got from each server: "
          "the props message's properties as the client decoded them are compared with the ones hopper archived "
          "(so with what the scenario set); on hopper, the queue's consumer group must have committed the end of "
          "every partition of the client's topic.")
        a("")
        a("| client | 1000 messages | 1 MiB | props + nested headers | unroutable (stored nowhere) | client's default properties | consumed from hopper | consumed from RabbitMQ |")
        a("|---|---|---|---|---|---|---|---|")
        for c in self.clients:
            k = self.kafka.get(c.name)
            if not k:
                continue
            if "tasks" in k:
                a("| %s | %s | n/a | n/a | n/a | | %s | %s |" % (
                    c.name, esc(k["tasks"].cell()), esc(self.worker_cell(c, "hopper", k.get("committed"))),
                    esc(self.worker_cell(c, "rabbitmq"))))
                continue
            dp = getattr(k["publish"], "default_props", [])
            cb = self.consumed.get(c.name, {})
            a("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                c.name, esc(k["publish"].cell()), esc(k["big"].cell()), esc(k["props"].cell()),
                esc(k["unroutable"].cell()), esc("; ".join(dp)),
                esc(self.consumed_cell(cb.get("hopper"), k.get("committed"))),
                esc(self.consumed_cell(cb.get("rabbitmq")))))
        a("")
        a("## Client test suites against hopper")
        a("")
        if not self.suites:
            a("Not run (`--no-suites`).")
        else:
            a("Each suite runs against hopper (task queues on: `--enable-rabbit`) and, as the reference, against "
              "RabbitMQ. A failure on hopper is classified: **not-implemented** (tx, exchange-to-exchange "
              "bindings, connection.update-secret and other methods hopper answers with 540 by design for now), "
              "**intended** (a reviewed difference, with the reason), **env** (fails on RabbitMQ as well, or needs "
              "something this machine does not have), **needs-consuming** (hopper ran with task queues off), "
              "**hopper bug** (must be fixed), **unclassified** (to investigate; fails the run).")
            a("")
            a("| suite | version | source | hopper: ran / passed / failed / skipped | RabbitMQ: ran / passed / failed / skipped | hopper failures by class |")
            a("|---|---|---|---|---|---|")
            for s in self.suites:
                a("| %s | %s | %s | %s | %s | %s |" % (
                    s.name, esc(s.version), esc(s.source), s.counts("hopper"), s.counts("rabbitmq"), esc(s.classes())))
            a("")
            for s in self.suites:
                if s.error:
                    a("- %s: %s" % (s.name, esc(s.error)))
        a("")
        a("## Differences from RabbitMQ")
        a("")
        diffs = self.differences()
        if diffs:
            a("Scenario steps whose outcome differs between the two servers:")
            a("")
            a("| client | step | hopper | RabbitMQ | why |")
            a("|---|---|---|---|---|")
            for d in diffs:
                a("| %s | %s | %s | %s | %s |" % (d[0], d[1], esc(d[2]), esc(d[3]), esc(d[4] or "**unexplained: hopper bug?**")))
        else:
            a("No scenario step differs in what the client saw (acks, nacks, returns, reply codes, errors).")
        a("")
        a("Intended differences the scenario exercises:")
        a("")
        for n in NOTES:
            a("- " + n)
        a("")
        suite_fail = [(s, t) for s in self.suites for t in s.failures()]
        if suite_fail:
            a("### Client-suite failures on hopper")
            a("")
            a("| suite | test | class | why |")
            a("|---|---|---|---|")
            for s, t in suite_fail:
                a("| %s | `%s` | %s | %s |" % (s.name, esc(t.name), t.classification, esc(t.reason)))
            a("")
        if HOPPER_BUGS:
            a("## Known hopper bugs the scenario steps around")
            a("")
            for b in HOPPER_BUGS:
                a("- " + b)
            a("")
        probs = self.problems()
        a("## Problems")
        a("")
        if probs:
            for p in probs:
                a("- " + esc(p))
        else:
            a("None: every client passed every step on both servers, every record in Kafka is right, and every "
              "suite failure on hopper is classified.")
        a("")
        return "\n".join(L)

    def _detail(self, c, target, step, key):
        res = self.results.get((c.name, target))
        if not res or step not in res.steps:
            return "-"
        return res.steps[step][2].get(key, "-")
