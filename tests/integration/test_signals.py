"""Signals other than SIGTERM/SIGINT's drain (that is test_shutdown.py):
SIGHUP is logged and ignored until config reload exists, and a signal event
libevent cannot make is a startup failure."""

import signal
import subprocess
import time

import pytest

import preload
from hopperproc import Hopper, hopper_bin, hopper_wrapper, scaled
from pikautil import connect


def test_sighup_is_logged_and_hopper_keeps_serving(hopper_factory, kafka, uid):
    exchange = "hup-" + uid
    h = hopper_factory({"exchanges": [{"name": exchange, "type": "direct", "vhost": "/"}]})
    with connect(h.url) as before:
        ch = before.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, "k", b"before SIGHUP")

        h.signal(signal.SIGHUP)
        deadline = time.monotonic() + scaled(10)
        while "SIGHUP" not in h.log_text():
            assert h.alive(), "hopper exited with %s on SIGHUP\n%s" % (h.proc.returncode, h.log_tail())
            assert time.monotonic() < deadline, "no SIGHUP line in the log\n%s" % h.log_tail()
            time.sleep(0.05)
        assert "reload is not supported yet" in h.log_text(), h.log_tail()

        # The connection from before is served, and a new one is accepted.
        ch.basic_publish(exchange, "k", b"after SIGHUP, old connection")
        with connect(h.url) as after:
            ch2 = after.channel()
            ch2.confirm_delivery()
            ch2.basic_publish(exchange, "k", b"after SIGHUP, new connection")
    assert h.alive()
    recs = kafka.read(exchange, 3, timeout=30)
    assert sorted(r.value for r in recs) == [
        b"after SIGHUP, new connection",
        b"after SIGHUP, old connection",
        b"before SIGHUP",
    ]


# Makes libevent's event_new() fail for one signal's event.
FAIL_SIGNAL_EVENT_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <event2/event.h>

struct event *event_new(struct event_base *base, evutil_socket_t fd, short what,
                        event_callback_fn cb, void *arg)
{
    static struct event *(*real)(struct event_base *, evutil_socket_t, short, event_callback_fn,
                                 void *);
    if (!real)
        real = (struct event *(*)(struct event_base *, evutil_socket_t, short, event_callback_fn,
                                  void *))dlsym(RTLD_NEXT, "event_new");
    const char *sig = getenv("FAIL_SIGNAL_EVENT");
    if ((what & EV_SIGNAL) && sig && fd == atoi(sig))
        return NULL;
    return real(base, fd, what, cb, arg);
}
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_event_that_cannot_be_made_is_a_startup_failure(kafka_cluster, tmp_path, sig):
    shim = preload.build(tmp_path, "failsignal", FAIL_SIGNAL_EVENT_SHIM)
    h = Hopper(tmp_path, kafka_cluster, env=preload.env(shim, FAIL_SIGNAL_EVENT=str(int(sig))))
    r = subprocess.run(
        hopper_wrapper() + [hopper_bin(), "-c", str(h.config_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=h.env,
        timeout=scaled(30),
        text=True,
    )
    assert r.returncode == 1, "exit code %d, expected 1 (startup failure)\n%s" % (r.returncode, r.stdout)
    assert "cannot set up signal handling" in r.stdout, r.stdout
    assert "listening on" not in r.stdout, r.stdout
