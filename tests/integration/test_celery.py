"""Celery through hopper (issue 12): an unchanged Celery 5 app, only its
broker URL pointed at the server, with a real `celery worker` (prefork pool,
-c 2) from PyPI. Every test runs twice: against hopper with task queues on,
and against a private Debian rabbitmq-server node, the reference.

Celery comes from .cache/celery/venv (scripts/test-venv.sh, pinned in
celery-requirements.txt; `make setup` builds it and the session fixture
builds it if missing). This file's own Python is Debian's, without Celery:
the test writes an app module into its tmp dir, runs workers and the
`celery` command from the venv as subprocesses, and runs the producer,
result and event-receiver side as small venv Python programs. Each test has
its own queue (`task_default_queue`), worker node names and notes file,
where the tasks write what ran. Every wait has a deadline; workers (their
whole process group) are killed at teardown.

RabbitMQ: tests/bench/rabbitmq.sh starts the node on free ports and a data
folder of its own, installing rabbitmq-server with apt-get when missing (as
root or through sudo); the tests against it are skipped only if that fails.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hopperproc import free_port

# Celery's workers take minutes: the plain `make check` runs this file, the
# Kafka 3.9 and sanitizer runs leave it out (Makefile), to keep CI's hour.
pytestmark = pytest.mark.celery

REPO = Path(__file__).resolve().parents[2]
VENV_SH = REPO / "scripts" / "test-venv.sh"
RABBITMQ_SH = REPO / "tests" / "bench" / "rabbitmq.sh"
RABBIT = {"rabbit": {"enabled": True, "commit_interval": 50}}

WORKER_READY_TIMEOUT = 90  # Kafka group join on hopper, mingle's 1 s wait, two cores
CLIENT_TIMEOUT = 120


# ---- Celery from PyPI ----------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_venv():
    r = subprocess.run(
        [str(VENV_SH), "celery"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900
    )
    if r.returncode != 0:
        pytest.fail("scripts/test-venv.sh celery failed (%d):\n%s" % (r.returncode, r.stderr[-3000:]), pytrace=False)
    return Path(r.stdout.strip().splitlines()[-1])


# ---- RabbitMQ, the reference ------------------------------------------------------------


class RabbitNode:
    """A private rabbitmq-server node through tests/bench/rabbitmq.sh."""

    def __init__(self, base):
        self.base = Path(base)
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            BENCH_RABBIT_PORT=str(self.port),
            BENCH_RABBIT_DIR=str(self.base),
            BENCH_RABBIT_NODE="hoppercelery%d@localhost" % os.getpid(),
            BENCH_RABBIT_EPMD=str(free_port()),
            BENCH_RABBIT_DIST_PORT=str(free_port()),
            BENCH_RABBIT_TIMEOUT="120",
        )

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d//" % self.port

    def script(self, cmd, timeout=600):
        return subprocess.run(
            [str(RABBITMQ_SH), cmd], env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )

    def ctl(self, *args):
        """rabbitmqctl -q ARGS --formatter json, decoded."""
        env = dict(self.env, HOME=str(self.base), ERL_EPMD_PORT=self.env["BENCH_RABBIT_EPMD"])
        r = subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.env["BENCH_RABBIT_NODE"], "-q", *args,
             "--formatter", "json"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    def queues(self):
        """{name: {messages_ready, messages_unacknowledged, consumers}}."""
        rows = self.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers")
        return {q["name"]: q for q in rows}


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory):
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    r = node.script("start")
    if r.returncode != 0:
        node.script("stop", timeout=120)
        if not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
            pytest.skip("rabbitmq-server is not installed and could not be installed:\n" + r.stdout[-2000:])
        pytest.fail("rabbitmq-server did not start:\n" + r.stdout[-3000:], pytrace=False)
    yield node
    node.script("stop", timeout=120)


class Broker:
    def __init__(self, name, url, hopper=None, rabbit=None):
        self.name, self.url, self.hopper, self.rabbit = name, url, hopper, rabbit

    def heartbeats(self):
        """The negotiated heartbeat of every open connection (seconds)."""
        if self.hopper:
            return [int(h) for h in re.findall(r"opened vhost .*heartbeat (\d+)s\)", self.hopper.log_text())]
        return [c["timeout"] for c in self.rabbit.ctl("list_connections", "timeout")]


@pytest.fixture(params=["hopper", pytest.param("rabbitmq", marks=pytest.mark.reference)])
def broker(request, hopper_factory):
    if request.param == "hopper":
        h = hopper_factory(RABBIT)
        return Broker("hopper", h.url.replace("%2F", "/"), hopper=h)
    node = request.getfixturevalue("rabbitmq_node")
    return Broker("rabbitmq", node.url, rabbit=node)


# ---- the app, its workers and its clients --------------------------------------------------

APP_MODULE = '''\
"""Written by tests/integration/test_celery.py."""
import os
import time

from celery import Celery

%(prelude)s
NOTES = %(notes)r
app = Celery("capp", broker=%(broker)r)
app.conf.update(%(conf)r)


def note(*words):
    line = (" ".join(str(w) for w in words) + "\\n").encode()
    fd = os.open(NOTES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@app.task(name="t.add")
def add(x, y):
    return x + y


@app.task(name="t.nap", bind=True)
def nap(self, tag, seconds):
    redelivered = int(bool((self.request.delivery_info or {}).get("redelivered")))
    note("start", tag, redelivered, self.request.hostname, "%%.3f" %% time.time())
    time.sleep(seconds)
    note("done", tag, redelivered, self.request.hostname, "%%.3f" %% time.time())
    return tag
'''

CLIENT_PRELUDE = """\
import json, sys, time
from capp import app, add, nap
def out(x):
    print("RESULT " + json.dumps(x), flush=True)
"""


class Worker:
    """One `celery worker` process group."""

    def __init__(self, capp, name, args=(), loglevel="info"):
        self.capp = capp
        self.hostname = "%s-%s@localhost" % (name, capp.uid)
        self.log_path = capp.dir / ("worker-%s.log" % name)
        self._log = open(self.log_path, "wb")
        cmd = [str(capp.venv / "bin" / "celery"), "-A", "capp", "worker", "--pool=prefork", "-c", "2",
               "-l", loglevel, "-n", self.hostname, *args]
        self.proc = subprocess.Popen(
            cmd, cwd=capp.dir, env=capp.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle, timeout=WORKER_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.proc.poll() is not None:
                raise AssertionError("worker %s exited (%s) before %r:\n%s" % (self.hostname, self.proc.returncode, needle, self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%r not in %s's log within %ds:\n%s" % (needle, self.hostname, timeout, self.tail()))
            time.sleep(0.2)
        return self

    def wait_ready(self, timeout=WORKER_READY_TIMEOUT):
        return self.wait_for("%s ready." % self.hostname, timeout)

    def wait_received(self, n, timeout=60):
        """Until the worker has logged n tasks received (delivered to it)."""
        deadline = time.monotonic() + timeout
        while len(task_lines(self.log_text(), "received")) < n:
            if time.monotonic() > deadline:
                raise AssertionError("%s received fewer than %d tasks within %ds:\n%s" % (self.hostname, n, timeout, self.tail()))
            time.sleep(0.2)
        return self

    def tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("worker %s still running %ds after the signal:\n%s" % (self.hostname, timeout, self.tail())) from None

    def kill_group(self):
        """SIGKILL to the main process and its pool at once: a crash."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        # The pool's children go to init, which reaps them a moment later.
        deadline = time.monotonic() + 15
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._log.close()

    def group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False


class CeleryApp:
    """The app module for one test, its workers and its client programs."""

    def __init__(self, venv, base, broker, uid, conf, prelude=""):
        self.venv, self.broker, self.uid = venv, broker, uid
        self.dir = Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.queue = "celery-" + uid
        self.notes_path = self.dir / "notes"
        self.notes_path.touch()
        conf = dict(task_default_queue=self.queue, **conf)
        (self.dir / "capp.py").write_text(
            APP_MODULE % {"notes": str(self.notes_path), "broker": broker.url, "conf": conf, "prelude": prelude}
        )
        self.env = dict(os.environ, PYTHONPATH=str(self.dir), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        self.workers = []

    def worker(self, name="w1", args=(), loglevel="info"):
        w = Worker(self, name, args, loglevel)
        self.workers.append(w)
        return w

    def client(self, code, timeout=CLIENT_TIMEOUT):
        """Run code with the venv's Python after CLIENT_PRELUDE; its out(x) calls, decoded."""
        try:
            r = subprocess.run(
                [str(self.venv / "bin" / "python"), "-c", CLIENT_PRELUDE + code], cwd=self.dir, env=self.env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError("client program still running after %ds:\n%s" % (timeout, e.stderr)) from None
        assert r.returncode == 0, "client program failed (%d):\n%s\n%s" % (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
        return [json.loads(line[7:]) for line in r.stdout.splitlines() if line.startswith("RESULT ")]

    def celery(self, *args, timeout=60):
        """The `celery -A capp ...` command; returns its stdout."""
        r = subprocess.run(
            [str(self.venv / "bin" / "celery"), "-A", "capp", *args], cwd=self.dir, env=self.env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )
        assert r.returncode == 0, "celery %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr)
        return r.stdout

    def notes(self):
        """[(event, tag, redelivered, hostname, time)] in the order written."""
        out = []
        for line in self.notes_path.read_text().splitlines():
            ev, tag, red, host, t = line.split()
            out.append((ev, tag, red == "1", host, float(t)))
        return out

    def started(self):
        return [n[1] for n in self.notes() if n[0] == "start"]

    def wait_notes(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred(self.notes()):
            if time.monotonic() > deadline:
                raise AssertionError("%s: not within %ds; notes:\n%s\nworkers:\n%s" % (
                    what, timeout, self.notes_path.read_text(), "\n\n".join(w.tail(15) for w in self.workers)))
            time.sleep(0.2)
        return self.notes()

    def send_naps(self, tags, seconds, **options):
        """nap(tag, seconds) for each tag, with apply_async options; the task ids."""
        return self.client("out([nap.apply_async((t, %r), **%r).id for t in %r])" % (seconds, options, list(tags)))[0]

    def stop(self):
        for w in self.workers:
            w.kill_group()


@pytest.fixture
def make_app(broker, celery_venv, tmp_path, uid):
    apps = []

    def make(prelude="", **conf):
        a = CeleryApp(celery_venv, tmp_path / ("app%d" % len(apps)), broker, uid + "-%d" % len(apps), conf, prelude)
        apps.append(a)
        return a

    yield make
    for a in apps:
        a.stop()
    # Nothing of a worker survives its test.
    for a in apps:
        for w in a.workers:
            assert not w.group_alive(), "worker %s's process group still alive" % w.hostname


def task_lines(log, what):
    """The ids of the worker's "Task t.x[id] received/succeeded" log lines."""
    return re.findall(r"Task t\.\w+\[([0-9a-f-]+)\] %s" % what, log)


# ---- 1. defaults; heartbeats as Celery negotiates them ---------------------------------------


def test_delay_and_apply_async_run_and_their_results_come_back(broker, make_app, tmp_path):
    # A result backend outside the broker (files), so this test is only the
    # task path; rpc:// has its own test.
    (tmp_path / "results").mkdir()
    app = make_app(result_backend="file://" + str(tmp_path / "results"))
    w = app.worker().wait_ready()
    got = app.client(
        """
r1 = add.delay(2, 3)
r2 = add.apply_async((40, 2), countdown=0, priority=0)
out([r1.get(timeout=60), r2.get(timeout=60), r1.id, r2.id])
"""
    )
    assert got[0][:2] == [5, 42]
    log = w.log_text()
    assert set(got[0][2:]) <= set(task_lines(log, "succeeded")), w.tail()
    # broker_heartbeat is 120 s; both servers propose 60 and py-amqp takes
    # the smaller for the worker's connections (producer connections,
    # Celery's and this client's, ask for none).
    assert 60 in broker.heartbeats(), broker.heartbeats()
    assert "Connection to broker lost" not in log


def test_heartbeats_keep_an_idle_worker_connected(broker, make_app):
    """broker_heartbeat 3 s: py-amqp negotiates 3 with either server, so an
    idle worker must send heartbeats to stay connected (two intervals
    silent closes it). It idles for four intervals, then still runs a task."""
    app = make_app(broker_heartbeat=3)
    w = app.worker().wait_ready()
    time.sleep(12)
    app.send_naps(["after-idle"], 0)
    app.wait_notes(lambda n: "after-idle" in [x[1] for x in n if x[0] == "done"], 60, "task after the idle time")
    assert 3 in broker.heartbeats(), broker.heartbeats()
    assert "Connection to broker lost" not in w.log_text(), w.tail()
    if broker.hopper:
        assert "missed heartbeats" not in broker.hopper.log_text(), broker.hopper.log_tail()


# ---- 2. acks_late and a worker that dies mid-task ---------------------------------------------


@pytest.mark.slow
@pytest.mark.deadline(240)
def test_acks_late_tasks_of_a_sigkilled_worker_all_run_on_the_next(broker, make_app):
    app = make_app(task_acks_late=True)
    tags = ["k%d" % i for i in range(6)]
    w1 = app.worker("w1").wait_ready()
    app.send_naps(tags, 3)
    w1.wait_received(len(tags))  # the prefetch (8) takes them all
    app.wait_notes(lambda n: sum(1 for x in n if x[0] == "start") >= 2, 60, "two tasks started on w1")
    w1.kill_group()  # main process and pool at once, mid-task
    before = app.notes()
    done1 = {x[1] for x in before if x[0] == "done"}
    assert {x[1] for x in before if x[0] == "start"} - done1, before  # some cut short
    app.worker("w2").wait_ready()
    notes = app.wait_notes(lambda n: set(tags) <= {x[1] for x in n if x[0] == "done"}, 120, "every task done on w2")
    on_w2 = [x for x in notes[len(before):] if x[0] == "start"]
    # Every one w1 held and did not finish ran on w2, once, flagged redelivered.
    assert sorted(x[1] for x in on_w2) == sorted(set(tags) - done1), notes
    assert all(x[2] for x in on_w2), on_w2


# ---- 3. ETA and countdown ---------------------------------------------------------------------


@pytest.mark.slow
def test_countdown_tasks_held_unacked_do_not_stall_the_queue(broker, make_app):
    """More countdown tasks than the worker's prefetch (-c 2 x multiplier 4
    = 8): Celery holds them unacked and raises its prefetch by one for
    each (basic.qos global=true: kombu sends that to a server that says
    RabbitMQ 3.x, which hopper with task queues does; README, "AMQP
    behaviour"), so tasks sent after them still run at once."""
    app = make_app()
    w = app.worker().wait_ready()
    countdown = 15
    t0 = time.time()
    eta = ["eta%d" % i for i in range(10)]
    app.send_naps(eta, 0, countdown=countdown)
    w.wait_received(len(eta), countdown - 5)  # held, not run
    if broker.rabbit:
        q = broker.rabbit.queues()[app.queue]
        assert (q["messages_ready"], q["messages_unacknowledged"]) == (0, len(eta)), q
    now = ["now%d" % i for i in range(4)]
    app.send_naps(now, 0)
    notes = app.wait_notes(lambda n: set(now) <= {x[1] for x in n if x[0] == "done"}, 60, "tasks sent after the countdown ones")
    assert not [x for x in notes if x[1] in eta], "a countdown task ran early: %s" % notes
    assert max(x[4] for x in notes if x[1] in now) < t0 + countdown
    notes = app.wait_notes(lambda n: set(eta) <= {x[1] for x in n if x[0] == "done"}, countdown + 60, "countdown tasks")
    assert min(x[4] for x in notes if x[0] == "start" and x[1] in eta) >= t0 + countdown - 1


# ---- 4. rpc:// results --------------------------------------------------------------------------


def test_rpc_result_backend(broker, make_app):
    app = make_app(result_backend="rpc://")
    app.worker().wait_ready()
    got = app.client(
        """
rs = [add.delay(i, i) for i in range(5)] + [add.apply_async((100, 1), countdown=1)]
out([r.get(timeout=60) for r in rs])
out([r.state for r in rs])
"""
    )
    assert got == [[0, 2, 4, 6, 8, 101], ["SUCCESS"] * 6]


# ---- 5. remote control ------------------------------------------------------------------------


def test_inspect_ping_stats_and_a_control_broadcast(broker, make_app):
    app = make_app()
    w = app.worker().wait_ready()
    # A broadcast to every worker: waits out its timeout for more replies.
    ping = json.loads(app.celery("inspect", "ping", "-t", "3", "--json"))
    assert ping == {w.hostname: {"ok": "pong"}}
    # To one worker: done at its reply.
    to_w = ("-t", "10", "-d", w.hostname, "--json")
    stats = json.loads(app.celery("inspect", "stats", *to_w))[w.hostname]
    assert stats["pool"]["max-concurrency"] == 2 and stats["broker"]["transport"] == "amqp", stats
    assert stats["prefetch_count"] == 8, stats
    reply = json.loads(app.celery("control", "rate_limit", "t.add", "600/m", *to_w))
    assert reply == [{w.hostname: {"ok": "new rate limit set successfully"}}], reply
    # The broadcast changed the worker: the rate limit is in its registry.
    reg = app.client("out(app.control.inspect(timeout=10, destination=[%r]).registered('rate_limit'))" % w.hostname)[0]
    assert reg == {w.hostname: ["t.add [rate_limit=600/m]", "t.nap"]}, reg


# ---- 6. mingle and gossip -----------------------------------------------------------------------


def test_two_workers_mingle_gossip_and_both_answer_ping(broker, make_app):
    app = make_app()
    w1 = app.worker("w1", loglevel="debug").wait_ready()
    assert "mingle: all alone" in w1.log_text()
    w2 = app.worker("w2").wait_ready()
    assert "mingle: sync with 1 nodes" in w2.log_text(), w2.tail()
    w1.wait_for("%s joined the party" % w2.hostname, 30)
    ping = json.loads(app.celery("inspect", "ping", "-t", "10", "-d", "%s,%s" % (w1.hostname, w2.hostname), "--json"))
    assert ping == {w1.hostname: {"ok": "pong"}, w2.hostname: {"ok": "pong"}}
    # Both take tasks from the one queue.
    app.send_naps(["m%d" % i for i in range(8)], 0.5)
    notes = app.wait_notes(lambda n: len([x for x in n if x[0] == "done"]) == 8, 60, "eight tasks")
    assert {x[3] for x in notes} <= {w1.hostname, w2.hostname}


# ---- 7. events ----------------------------------------------------------------------------------


def test_events_reach_a_receiver_like_celery_events(broker, make_app):
    app = make_app()
    w = app.worker(args=["-E"]).wait_ready()
    got = app.client(
        """
import socket
seen, sent = [], {}
def on_event(ev):
    seen.append((ev["type"], ev.get("uuid"), ev.get("hostname")))
    types = {(t, u) for t, u, _ in seen}
    # The task's last event and a worker heartbeat (every 2 s).
    if ("task-succeeded", sent.get("id")) in types and ("worker-heartbeat", None) in types:
        recv.should_stop = True
def ready(*args, **kwargs):
    # Our queue is bound: only now send the task, so no event can be missed.
    sent["id"] = add.delay(20, 22).id
with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={"*": on_event})
    recv.on_consume_ready = ready
    deadline = time.monotonic() + 60
    while not recv.should_stop and time.monotonic() < deadline:
        try:
            recv.capture(limit=None, timeout=1, wakeup=False)
        except socket.timeout:
            pass
out({"id": sent.get("id"), "seen": seen})
"""
    )[0]
    tid = got["id"]
    mine = [t for t, u, _ in got["seen"] if u == tid]
    assert mine[:1] == ["task-received"] and "task-started" in mine and mine[-1] == "task-succeeded", got
    assert ("worker-heartbeat", None, w.hostname) in [tuple(x) for x in got["seen"]], got["seen"][:20]


# ---- 8. --purge ---------------------------------------------------------------------------------


def test_worker_purge_empties_the_queue_before_it_starts(broker, make_app):
    # Confirmed publishes: the five are in the queue (on hopper: in Kafka)
    # before the purge counts them. Unconfirmed, a slow run (ASan) purged
    # while some were still on their way and erased fewer.
    app = make_app(broker_transport_options={"confirm_publish": True})
    old = ["old%d" % i for i in range(5)]
    app.send_naps(old, 0)  # declares the queue, then publishes: no worker yet
    w = app.worker(args=["--purge"]).wait_ready()
    assert "purge: Erased 5 messages from the queue." in w.log_text(), w.tail()
    app.send_naps(["new"], 0)
    app.wait_notes(lambda n: "new" in [x[1] for x in n if x[0] == "done"], 60, "the task sent after the purge")
    time.sleep(2)  # anything purged that still came would be here by now
    assert app.started() == ["new"], app.notes()


# ---- 9. warm and cold shutdown ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.deadline(240)
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGQUIT"])
def test_shutdown_leaves_nothing_unacked_and_the_next_worker_gets_the_rest(broker, make_app, sig):
    """acks_late: warm shutdown (SIGTERM) lets the running tasks finish and
    acks them; cold (SIGQUIT) stops them. Either way what the worker held
    and did not ack goes back to the queue for the next worker."""
    app = make_app(task_acks_late=True)
    tags = ["s%d" % i for i in range(6)]
    w1 = app.worker("w1").wait_ready()
    app.send_naps(tags, 4)
    w1.wait_received(len(tags))  # the prefetch (8) takes them all
    app.wait_notes(lambda n: sum(1 for x in n if x[0] == "start") >= 2, 60, "two tasks started on w1")
    w1.signal(getattr(signal, sig))
    w1.wait_exit(60)
    w1.kill_group()
    first = app.notes()
    done1 = {x[1] for x in first if x[0] == "done"}
    started1 = {x[1] for x in first if x[0] == "start"}
    if sig == "SIGTERM":
        assert done1 == started1, first  # warm: what ran, finished
    else:
        assert not done1, first  # cold: cut short
    if broker.rabbit:
        q = broker.rabbit.queues()[app.queue]
        assert (q["messages_ready"], q["messages_unacknowledged"], q["consumers"]) == (len(tags) - len(done1), 0, 0), q
    app.worker("w2").wait_ready()
    notes = app.wait_notes(lambda n: set(tags) <= {x[1] for x in n if x[0] == "done"}, 120, "every task done")
    again = [x for x in notes[len(first):] if x[0] == "start"]
    assert sorted(x[1] for x in again) == sorted(set(tags) - done1), notes  # nothing acked came again
    # Delivered to w1 before, so redelivered.
    assert all(x[2] for x in again), again


# ---- prefetch as Celery sets it ---------------------------------------------------------------


@pytest.mark.parametrize("acks_late", [True, False], ids=["acks_late", "acks_early"])
def test_prefetch_a_worker_holds(broker, make_app, acks_late):
    """-c 2, worker_prefetch_multiplier 4, a queue of slow tasks: how many
    messages the worker holds unacked. kombu chooses basic.qos global=true
    for RabbitMQ 3.3-3.x, which hopper with task queues says it is: the
    limit is 8 for the worker's channel on both. With early acks the two
    running tasks are acked, so it holds 8 more."""
    app = make_app(task_acks_late=acks_late, worker_prefetch_multiplier=4)
    tags = ["p%d" % i for i in range(20)]
    app.send_naps(tags, 30)
    w = app.worker().wait_ready()
    app.wait_notes(lambda n: sum(1 for x in n if x[0] == "start") >= 2, 60, "two tasks started")
    time.sleep(3)
    got = app.client(
        """
i = app.control.inspect(timeout=10, destination=[%r])
a, r = i.active(), i.reserved()
with app.connection_for_write() as c:
    c.ensure_connection(max_retries=3)
    spec = c.qos_semantics_matches_spec
out({"active": sum(map(len, a.values())), "reserved": sum(map(len, r.values())), "qos_global": not spec})
""" % w.hostname
    )[0]
    print("prefetch on %s: %s" % (broker.name, got))
    assert got["active"] == 2 and got["active"] + got["reserved"] == (8 if acks_late else 10), got
    if broker.rabbit:
        q = broker.rabbit.queues()[app.queue]
        held = got["active"] + got["reserved"]
        assert (q["messages_unacknowledged"], q["messages_ready"]) == (8, len(tags) - held), q
    assert got["qos_global"]
    assert w.proc.poll() is None
