"""Signals other than SIGTERM/SIGINT (those are in test_shutdown.py):
SIGHUP is logged and ignored until config reload exists."""

import signal
import time

from hopperproc import scaled
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
