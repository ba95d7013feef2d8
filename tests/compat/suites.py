"""suites - the clients' own test suites, run against hopper and (as the
reference) RabbitMQ: the parts about connecting, declaring and publishing.

Sources come from the registries, at the same pins as the scenario clients,
into .cache/compat/suites (never committed):
  - amqp091-go: the module from the Go module proxy; its integration tests
    (files tagged `integration`), one test per process with a deadline.
  - py-amqp: the sdist from PyPI; t/integration/test_rmq.py.
  - amqplib: the npm package (0.10 ships its tests); test/channel_api.js,
    test/callback_api.js and test/connect.js with mocha.
  - pika: its acceptance tests are in no registry package. With
    COMPAT_PIKA_SRC=<pika source tree> (a checkout of the pika repository at
    the pinned tag) they run from a copy under .cache/compat; otherwise the
    suite is listed as not available.

Every failure on hopper is classified (see classify()).
"""

import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import clients as clientlib

PER_TEST_TIMEOUT = 15  # seconds, one test of a one-test-per-process suite
SUITE_TIMEOUT = 420  # seconds, one whole suite run against one server


class TestResult:
    def __init__(self, name, outcome, message=""):
        self.name, self.outcome, self.message = name, outcome, message
        self.classification = None
        self.reason = ""


class SuiteResult:
    def __init__(self, suite):
        self.name, self.version, self.source = suite.name, suite.version, suite.source
        self.runs = {}  # target -> [TestResult]
        self.error = None
        self.seconds = 0.0

    def counts(self, target):
        rs = self.runs.get(target)
        if rs is None:
            return "not run"
        n = lambda o: sum(1 for r in rs if r.outcome == o)  # noqa: E731
        return "%d / %d / %d / %d" % (len(rs), n("passed"), n("failed"), n("skipped"))

    def failures(self):
        return [r for r in self.runs.get("hopper", []) if r.outcome == "failed"]

    def classes(self):
        out = {}
        for r in self.failures():
            out[r.classification] = out.get(r.classification, 0) + 1
        return ", ".join("%s %d" % kv for kv in sorted(out.items())) or "none"


# ---- classification --------------------------------------------------------------------

# Reviewed failures, by (suite, test name): class and why. The name matches
# the whole test name or its start up to "::" or a blank (pytest's
# Class::test, mocha's "suite test"). A test not listed is classified by the
# heuristics in classify().
GO = "amqp091-go integration"
CONFIRM_TIMING = ("intended", "the test allows 200 ms for a confirm; hopper confirms once Kafka has the record on 2 "
                  "replicas (acks=all), and the first publish to a topic also creates it")
PIKA = "pika acceptance (blocking adapter)"
UNBOUND_ROUTED = ("intended", "mandatory publish to an exchange without bindings: hopper routes it to the exchange's "
                  "topic (default route), so no basic.return; RabbitMQ returns it")
# With task queues on, hopper serves durable queues from Kafka: a delivery
# goes through Kafka and the queue's consumer group.
REVIEWED = {
    (GO, "TestIntegrationConfirm"): CONFIRM_TIMING,
    (GO, "TestIntegrationQueuePurge"): CONFIRM_TIMING,
    (GO, "TestIntegrationReturn"): ("intended", "mandatory publish to the default exchange: hopper routes it to topic "
                                    "<routing key> (default_route on), so nothing is returned; with default_route off "
                                    "it is returned 312 NO_ROUTE (the scenario's mandatory step)"),
    (GO, "TestIntegrationQueueUnbind"): UNBOUND_ROUTED,
    ("amqplib channel/callback/connect tests", "updateSecret"): (
        "not-implemented", "connection.update-secret (RabbitMQ's extension for refreshing credentials): hopper "
        "answers 540 'unknown method'"),
    # pika acceptance (only with COMPAT_PIKA_SRC): reviewed by hand on 1.4.4.
    (PIKA, "TestConnectionProperties"): ("not-implemented", "asserts the exchange_exchange_bindings capability, "
                                         "which hopper does not advertise (no exchange.bind)"),
    (PIKA, "TestExchangeBindAndUnbind"): ("not-implemented", "exchange.bind"),
    (PIKA, "TestPublishAndBasicPublishWithPubacksUnroutable"): UNBOUND_ROUTED,
    (PIKA, "TestUnroutableMessageReturnedInPubackMode"): UNBOUND_ROUTED,
    (PIKA, "TestUnroutableMessagesReturnedInNonPubackMode"): UNBOUND_ROUTED,
    (PIKA, "TestConfirmDeliveryAfterUnroutableMessage"): UNBOUND_ROUTED,
    (GO, "TestChannelExceptionWithCloseIssue43"): (
        "hopper bug", "crossing channel.close: hopper frees the channel when the client's close arrives while its "
        "own close (404) is outstanding, then takes the client's close-ok for that channel as a frame on an unopened "
        "channel and closes the whole connection with 504 (RabbitMQ stays closing until the close-ok)"),
}

# hopper's 540 reply texts (src/chan.c, src/consume.c, src/conn.c), as the
# client reports them or as hopper logs "closing connection: ...".
NOT_IMPL_TEXT = re.compile(r"NOT_IMPLEMENTED - [^\n]*")
NOT_IMPL = re.compile(r"\b540\b|NOT_IMPLEMENTED|not implemented", re.I)


def classify(suite, test, rabbit_outcome):
    """Set test.classification and test.reason for a failure on hopper."""
    for (s, prefix), (cls, why) in REVIEWED.items():
        if s == suite and (test.name == prefix or test.name.startswith((prefix + "::", prefix + " "))):
            test.classification, test.reason = cls, why
            return
    msg = test.message or ""
    if rabbit_outcome == "failed":
        test.classification, test.reason = "env", "fails on RabbitMQ as well: " + first_line(msg)
        return
    if rabbit_outcome in ("skipped", None):
        test.classification, test.reason = "env", "skipped or absent on RabbitMQ: " + first_line(msg)
        return
    for text in (msg, getattr(test, "hopper_log", "")):
        method = not_implemented_method(text)
        if method:
            needs = method.split(".")[0] == "basic" and "needs task queues" in text
            test.classification = "needs-consuming" if needs else "not-implemented"
            test.reason = "hopper answers %s with 540 NOT_IMPLEMENTED%s" % (
                method, " (task queues off)" if needs else "")
            return
        m = NOT_IMPL_TEXT.search(text or "")
        if m:
            test.classification, test.reason = "not-implemented", "hopper answers 540: " + first_line(m.group(0), 160)
            return
    if NOT_IMPL.search(msg):
        test.classification, test.reason = "not-implemented", "connection closed with 540: " + first_line(msg)
        return
    test.classification, test.reason = "unclassified", first_line(msg) or "(no message)"


def not_implemented_method(text):
    """'basic.consume' from hopper's 540 reply text."""
    m = re.search(r"NOT_IMPLEMENTED - method ([a-z]+\.[a-z-]+)", text or "")
    return m.group(1) if m else None


def first_line(s, n=220):
    s = " ".join(s.strip().split())
    return s[:n]


# ---- suites ------------------------------------------------------------------------------


class Suite:
    name = version = source = ""

    def install(self, ctx):
        raise NotImplementedError

    def run(self, ctx, url, host, port, log_path, server_log=None):
        """-> [TestResult]. server_log(): the server's log lines since the last call, if known."""
        raise NotImplementedError


def bounded(cmd, timeout, **kw):
    """(returncode or None on timeout, output)"""
    try:
        r = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, text=True, errors="replace", **kw)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out


class Amqp091Go(Suite):
    name = "amqp091-go integration"
    version = clientlib.GO_AMQP091
    source = "Go module proxy (module zip); recovery_test.go left out: it kills connections through RabbitMQ's management HTTP API"

    def install(self, ctx):
        env = ctx.go_env()
        d = ctx.cache / "suites" / ("amqp091-go-" + self.version)
        self.binary = d / "amqp091.test"
        if not self.binary.exists():
            out = ctx.sh(["go", "mod", "download", "-json", "github.com/rabbitmq/amqp091-go@" + self.version],
                         env=env, timeout=300, what="go mod download")
            src = Path(json.loads(out)["Dir"])
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
            for p in d.rglob("*"):
                p.chmod(0o755 if p.is_dir() else 0o644)
            ctx.sh(["go", "test", "-c", "-tags", "integration", "-o", self.binary, "."], cwd=d, env=env,
                   timeout=600, what="go test -c")
        self.tests = []
        for f in sorted(d.glob("*_test.go")):
            text = f.read_text(errors="replace")
            if f.name != "recovery_test.go" and re.search(r"^//go:build .*\bintegration\b", text, re.M):
                self.tests += re.findall(r"^func (Test\w+)\(", text, re.M)

    def run(self, ctx, url, host, port, log_path, server_log=None):
        results = []
        env = dict(os.environ, AMQP_URL=url)
        deadline = time.monotonic() + SUITE_TIMEOUT
        with open(log_path, "w") as log:
            for t in self.tests:
                if time.monotonic() > deadline:
                    results.append(TestResult(t, "failed", "suite deadline passed before this test ran"))
                    continue
                code, out = bounded([self.binary, "-test.run", "^%s$" % t, "-test.v", "-test.timeout",
                                     "%ds" % PER_TEST_TIMEOUT], PER_TEST_TIMEOUT + 10, env=env, cwd=self.binary.parent)
                log.write("===== %s (exit %s)\n%s\n" % (t, code, out))
                seen = server_log() if server_log else ""
                if code is None:
                    results.append(TestResult(t, "failed", "hung: killed after %ds" % (PER_TEST_TIMEOUT + 10)))
                elif re.search(r"^--- SKIP: %s\b" % t, out, re.M):
                    results.append(TestResult(t, "skipped", skip_reason(out)))
                elif code == 0:
                    results.append(TestResult(t, "passed"))
                else:
                    results.append(TestResult(t, "failed", go_failure(out)))
                    results[-1].hopper_log = seen
        return results


def skip_reason(out):
    m = re.search(r"^\s+\S+\.go:\d+: (.*)$", out, re.M)
    return m.group(1) if m else ""


def go_failure(out):
    lines = [ln.strip() for ln in out.splitlines() if re.match(r"\s+\S+_test\.go:\d+:", ln) or "panic:" in ln
             or "Exception (" in ln]
    return " | ".join(lines[:4]) or out.strip()[-300:]


class PyAmqp(Suite):
    name = "py-amqp integration (test_rmq.py, TLS cases left out)"
    version = clientlib.PY_PINS["amqp"]
    source = "PyPI sdist"

    def install(self, ctx):
        clientlib.ensure_venv(ctx)
        d = ctx.cache / "suites" / ("amqp-" + self.version)
        if not (d / "t" / "integration" / "test_rmq.py").exists():
            dl = ctx.cache / "suites" / "dl"
            ctx.sh([ctx.py, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", dl,
                    "amqp==" + self.version], timeout=300, what="pip download amqp")
            shutil.rmtree(d, ignore_errors=True)
            ctx.sh(["tar", "xzf", dl / ("amqp-%s.tar.gz" % self.version), "-C", d.parent], what="tar")
        self.dir = d

    def run(self, ctx, url, host, port, log_path, server_log=None):
        return run_pytest(ctx, self.dir, ["t/integration/test_rmq.py", "--timeout=%d" % PER_TEST_TIMEOUT,
                                          "-k", "not tls"],
                          dict(os.environ, RABBITMQ_HOST=host, RABBITMQ_5672_TCP=str(port),
                               RABBITMQ_5671_TCP=str(port)), log_path)


def run_pytest(ctx, cwd, args, env, log_path):
    xml = Path(str(log_path) + ".xml")
    if xml.exists():
        xml.unlink()
    code, out = bounded([ctx.py, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
                         "--junitxml", xml, "-o", "junit_family=xunit1"] + args, SUITE_TIMEOUT, cwd=cwd, env=env)
    Path(log_path).write_text(out)
    if not xml.exists():
        return [TestResult("(suite)", "failed", "pytest produced no report (exit %s): %s" % (code, out[-300:]))]
    return parse_junit(xml)


def parse_junit(path):
    results = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = "%s::%s" % (tc.get("classname", "").split(".")[-1], tc.get("name"))
        fail = tc.find("failure")
        if fail is None:
            fail = tc.find("error")
        skip = tc.find("skipped")
        if fail is not None:
            results.append(TestResult(name, "failed", (fail.get("message") or "") + " " + (fail.text or "")[-1500:]))
        elif skip is not None:
            results.append(TestResult(name, "skipped", skip.get("message") or ""))
        else:
            results.append(TestResult(name, "passed"))
    return results


class Amqplib(Suite):
    name = "amqplib channel/callback/connect tests"
    version = clientlib.NPM_AMQPLIB
    source = "npm package (mocha %s)" % clientlib.NPM_DEV["mocha"]
    FILES = ["test/channel_api.js", "test/callback_api.js", "test/connect.js"]

    def install(self, ctx):
        clientlib.Amqplib().install(ctx)
        self.modules = ctx.cache / "node" / "node_modules"
        self.dir = self.modules / "amqplib"

    def run(self, ctx, url, host, port, log_path, server_log=None):
        env = dict(os.environ, URL=url, NODE_PATH=str(self.modules))
        out_json = Path(str(log_path) + ".json")
        code, out = bounded(["node", self.modules / "mocha" / "bin" / "mocha", "--ui", "tdd", "--timeout", "5000", "--exit",
                             "--reporter", "json", "--reporter-option", "output=%s" % out_json] + self.FILES,
                            SUITE_TIMEOUT, cwd=self.dir, env=env)
        Path(log_path).write_text(out)
        if not out_json.exists():
            return [TestResult("(suite)", "failed", "mocha produced no report (exit %s): %s" % (code, out[-300:]))]
        data = json.loads(out_json.read_text())
        results = []
        for t in data.get("passes", []):
            results.append(TestResult(t["fullTitle"], "passed"))
        for t in data.get("failures", []):
            err = t.get("err", {})
            results.append(TestResult(t["fullTitle"], "failed", "%s %s" % (err.get("message", ""), err.get("stack", "")[:800])))
        for t in data.get("pending", []):
            results.append(TestResult(t["fullTitle"], "skipped"))
        if server_log:
            # One mocha process runs every test, so to learn what hopper
            # answered (the 540 that ended a channel shows only as "Channel
            # ended" in the failure), run each failed test again on its own.
            server_log()
            with open(log_path, "a") as log:
                for r in results:
                    if r.outcome != "failed":
                        continue
                    grep = "^" + re.escape(r.name) + "$"
                    code, out = bounded(["node", self.modules / "mocha" / "bin" / "mocha", "--ui", "tdd", "--timeout",
                                         "5000", "--exit", "--grep", grep] + self.FILES, 60, cwd=self.dir, env=env)
                    log.write("===== again alone: %s (exit %s)\n%s\n" % (r.name, code, out))
                    r.hopper_log = server_log() + "\n" + out
        return results


class PikaAcceptance(Suite):
    name = "pika acceptance (blocking adapter)"
    version = clientlib.PY_PINS["pika"]
    source = "pika source tree from COMPAT_PIKA_SRC (not in any registry package)"

    def install(self, ctx):
        clientlib.ensure_venv(ctx)
        src = os.environ.get("COMPAT_PIKA_SRC")
        if not src or not (Path(src) / "tests" / "acceptance" / "blocking_adapter_test.py").exists():
            raise Unavailable("pika ships its acceptance tests in no registry package; set COMPAT_PIKA_SRC to a "
                              "pika source tree to run them")
        self.src = Path(src)

    def run(self, ctx, url, host, port, log_path, server_log=None):
        # The tests hard-code 127.0.0.1:5672: run a copy pointed at `port`,
        # against the installed pika (not the tree's).
        d = ctx.cache / "suites" / ("pika-acceptance-%d" % port)
        shutil.rmtree(d, ignore_errors=True)
        (d / "tests").mkdir(parents=True)
        shutil.copytree(self.src / "tests" / "acceptance", d / "tests" / "acceptance")
        for name in ("__init__.py", "conftest.py"):
            if (self.src / "tests" / name).exists():
                shutil.copy(self.src / "tests" / name, d / "tests" / name)
        if (self.src / "tests" / "misc").exists():
            shutil.copytree(self.src / "tests" / "misc", d / "tests" / "misc")
        f = d / "tests" / "acceptance" / "blocking_adapter_test.py"
        f.write_text(f.read_text().replace("{'port': 5672}", "{'port': %d}" % port))
        return run_pytest(ctx, d, ["tests/acceptance/blocking_adapter_test.py", "--timeout=%d" % PER_TEST_TIMEOUT],
                          dict(os.environ), log_path)


class Unavailable(Exception):
    pass


ALL = [Amqp091Go, PyAmqp, Amqplib, PikaAcceptance]


def run_suite(suite, ctx, hopper, rabbit, logdir, log):
    res = SuiteResult(suite)
    t0 = time.monotonic()
    try:
        suite.install(ctx)
        res.version, res.source = suite.version, suite.source
    except Unavailable as e:
        res.error = None
        res.source = "not available: %s" % e
        log("suite %s: not available" % suite.name)
        return res
    except Exception as e:  # noqa: BLE001
        res.error = "install failed: %s" % str(e)[:500]
        log("suite %s: %s" % (suite.name, res.error))
        return res
    slug = re.sub(r"\W+", "-", suite.name).strip("-")
    for target, url, port in (("hopper", hopper.url, hopper.port), ("rabbitmq", rabbit.url, rabbit.port)):
        log_path = logdir / ("suite-%s.%s.log" % (slug, target))
        t1 = time.monotonic()
        server_log = None
        if target == "hopper":
            pos = [len(hopper.log_text())]

            def server_log(pos=pos):
                text = hopper.log_text()
                new, pos[0] = text[pos[0]:], len(text)
                return new

        try:
            res.runs[target] = suite.run(ctx, url, "127.0.0.1", port, log_path, server_log)
        except Exception as e:  # noqa: BLE001
            res.error = "%s on %s: %s" % (suite.name, target, e)
            res.runs[target] = []
        log("suite %s on %s: %s (%.0fs)" % (suite.name, target, res.counts(target), time.monotonic() - t1))
    rabbit_outcome = {r.name: r.outcome for r in res.runs.get("rabbitmq", [])}
    for t in res.failures():
        classify(res.name, t, rabbit_outcome.get(t.name))
    # pytest reports a failed teardown as a second result of the same test:
    # the cleanup ran on the connection the test's failure had closed.
    first = {}
    for t in res.failures():
        if not (t.message or "").startswith("failed on teardown"):
            first.setdefault(t.name, t)
    for t in res.failures():
        f = first.get(t.name)
        if f is not None and f is not t and t.classification == "unclassified":
            t.classification, t.reason = f.classification, "teardown after the failure above: " + f.reason
    res.seconds = time.monotonic() - t0
    return res
