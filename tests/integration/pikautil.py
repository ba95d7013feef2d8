"""pikautil - pika connections that do not hide the error that ended a test."""

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
