"""pikautil - pika helpers for the integration tests: connections that do not
hide the error that ended a test, and deliveries read with a deadline."""

import time
from contextlib import contextmanager

import pika


@contextmanager
def connect(url, **params):
    """A BlockingConnection to url (extra URL parameters as keywords).

    If the body raised, the connection is closed quietly so the original
    error is what pytest reports; otherwise it is closed normally and a
    failing close fails the test."""
    if params:
        url += "?" + "&".join("%s=%s" % kv for kv in params.items())
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield conn
    except BaseException:
        if conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the body's error matters more
                pass
        raise
    else:
        conn.close()


def deliveries(ch, queue, n, timeout=20.0, auto_ack=False, idle=0.3):
    """Up to n deliveries from queue as (method, properties, body), through
    ch.consume(); stops at n or after timeout seconds."""
    out = []
    deadline = time.monotonic() + timeout
    for method, props, body in ch.consume(queue, auto_ack=auto_ack, inactivity_timeout=idle):
        if method is not None:
            out.append((method, props, body))
        if len(out) >= n or time.monotonic() > deadline:
            break
    return out
