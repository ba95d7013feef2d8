"""The wall clock stepping back (NTP, an administrator) does not close
connections: heartbeat timing runs on a monotonic clock.

hopper runs with a preloaded library that moves gettimeofday(), time() and
clock_gettime(CLOCK_REALTIME) one hour back once a trigger file exists."""

import signal
import struct
import time
from datetime import datetime

import amqpwire as w
import preload

STEP_S = 3600

CLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int stepped;

static time_t offset(void)
{
    if (!stepped) {
        const char *trigger = getenv("CLOCK_SHIM_TRIGGER");
        if (trigger && access(trigger, F_OK) == 0)
            stepped = 1;
    }
    return stepped ? %(step)d : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec -= offset();
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
""" % {"step": STEP_S}

# The client's heartbeat: hopper checks every 5 s and closes after 20 s of
# silence.
HEARTBEAT = 10
# How long the client stays silent after the step. libevent's cached wall
# clock follows gettimeofday() within about 7 s, and hopper checks the
# heartbeat every 5 s after that: a wall-clock timer sees the step within
# 12 s. Silent for 16 s, the client is still 4 s inside its 20 s.
SILENT_S = 16


def log_time(line):
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_wall_clock_step_back_keeps_heartbeating_connections(hopper_factory, kafka, uid, tmp_path):
    trigger = tmp_path / "step-back"
    shim = preload.build(tmp_path, "clockshim", CLOCK_SHIM)
    h = hopper_factory(env=preload.env(shim, CLOCK_SHIM_TRIGGER=str(trigger)))
    topic = "clock-" + uid

    with w.RawClient(h.port) as c:
        channel_max, frame_max, _ = c.login()
        c.tune_ok(channel_max, frame_max, heartbeat=HEARTBEAT)
        c.send(w.method_frame(0, w.CONNECTION_OPEN, w.shortstr("/") + w.shortstr("") + b"\x00"))
        c.expect_method(w.CONNECTION_OPEN_OK)
        c.open_channel(1, confirm=True)

        trigger.touch()
        t0 = time.monotonic()
        # Silent, but reading: hopper's heartbeats are all it may send.
        while time.monotonic() - t0 < SILENT_S:
            try:
                f = c.read_frame(timeout=SILENT_S - (time.monotonic() - t0))
            except TimeoutError:
                break
            assert f is not None, "hopper closed the connection %.1f s after the clock stepped back" % (
                time.monotonic() - t0
            )
            assert f.kind == w.FRAME_HEARTBEAT, "unexpected frame %r" % f

        c.send(w.frame(w.FRAME_HEARTBEAT, 0, b""))
        c.send(w.publish_frames(1, "", topic, b"after the step"))
        f = c.expect_method(w.BASIC_ACK, timeout=30)
        assert w.parse_confirm(f.method, f.args) == (1, False)
        c.send(w.method_frame(0, w.CONNECTION_CLOSE, struct.pack(">H", 200) + w.shortstr("bye") + struct.pack(">HH", 0, 0)))
        c.expect_method(w.CONNECTION_CLOSE_OK)

    h.wait_for_log("client closed connection")
    assert "missed heartbeats" not in h.log_text()
    # The step reached hopper: log lines after it are stamped an hour back.
    lines = h.log_text().splitlines()
    started = log_time(next(line for line in lines if "listening on" in line))
    closed = log_time(next(line for line in lines if "client closed connection" in line))
    assert (started - closed).total_seconds() > STEP_S - 120, "no clock step in the log:\n%s" % h.log_tail()
    assert [r.value for r in kafka.read(topic, 1, timeout=30)] == [b"after the step"]


# The drain must outlast libevent's catching up with the step (about 7 s).
DRAIN_TIMEOUT_MS = 9000


def test_wall_clock_step_back_during_the_drain_keeps_its_deadline(hopper_factory, uid, tmp_path):
    trigger = tmp_path / "step-back"
    shim = preload.build(tmp_path, "clockshim", CLOCK_SHIM)
    exchange = "clock-drain-" + uid
    # The topic never exists: its messages stay in flight until
    # topic.metadata.propagation.max.ms (30 s), longer than the drain.
    h = hopper_factory(
        {
            "limits": {"drain_timeout": DRAIN_TIMEOUT_MS},
            "kafka": {"auto_create_topics": False},
            "exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}],
        },
        env=preload.env(shim, CLOCK_SHIM_TRIGGER=str(trigger)),
    )
    with w.RawClient(h.port) as c:
        c.handshake()
        c.open_channel(1, confirm=True)
        c.send(w.publish_frames(1, exchange, "k", b"stuck") + w.method_frame(2, w.CHANNEL_OPEN, w.shortstr("")))
        c.expect_method(w.CHANNEL_OPEN_OK)
        t0 = time.monotonic()
        h.signal(signal.SIGTERM)
        h.wait_for_log("shutting down: no new connections or messages; 1 messages in flight")
        trigger.touch()
        methods = []
        while True:
            f = c.read_frame(timeout=60)
            if f is None:
                break
            methods.append(f.method)
            if f.method == w.CONNECTION_CLOSE:
                c.send(w.method_frame(0, w.CONNECTION_CLOSE_OK))
    code = h.wait(timeout=60)
    took = time.monotonic() - t0
    assert code == 0
    assert methods == [w.BASIC_NACK, w.CONNECTION_CLOSE], methods
    assert took < DRAIN_TIMEOUT_MS / 1000 + 4, "exit %.1f s after SIGTERM with drain_timeout %.0f s" % (
        took,
        DRAIN_TIMEOUT_MS / 1000,
    )
