"""The compat scenario for kombu over py-amqp, with `confirm_publish` (each
publish waits for its confirm: kombu keeps one in flight per channel). See
tests/compat/README.md for the steps and the output contract. py-amqp has
no basic.nack: the consume step requeues with basic.reject (kombu's
Message.requeue)."""

import os
import socket
import sys
import time

import amqp
import kombu
from kombu import Connection, Consumer, Exchange, Producer, Queue

from scenario_common import (CLIENT, COMMIT_WAIT, EXCHANGE, QUEUE, RUN, SPEC, TIMEOUT, Tally, close_step, plain,
                             step)

# The scenario's queue, as declared (again) by the consume step.
SCENARIO_QUEUE = Queue(QUEUE, Exchange(EXCHANGE, "topic", durable=False), routing_key=SPEC["binding"], durable=True)


def main():
    conn = Connection(
        os.environ["COMPAT_URL"],
        transport_options={"confirm_publish": True},
        connect_timeout=TIMEOUT,
    )
    # ---- connect (py-amqp's default: the first of its mechanisms the server offers)
    try:
        conn.ensure_connection(max_retries=1)
        raw = conn.connection
        mech = next((a.mechanism for a in raw.authentication if a.mechanism in raw.mechanisms), b"?").decode()
    except Exception as e:  # noqa: BLE001
        step("connect", False, "error=%r" % (e,))
        return 1
    step("connect", True, "mechanism=%s _version=%s/amqp-%s" % (mech, kombu.__version__, amqp.__version__))

    returns = []

    def on_return(exc, exchange, routing_key, message):
        returns.append(exc)

    # ---- declare
    try:
        ch1, ch2 = conn.channel(), conn.channel()
        x = SCENARIO_QUEUE.exchange
        bound = SCENARIO_QUEUE(ch1)
        bound.declare()
        _, messages, _ = bound.queue_declare(passive=True)
        noroute = Exchange(SPEC["noroute_exchange"], "topic", durable=True)
        noroute(ch1).declare()
        p1 = Producer(ch1, exchange=x, on_return=on_return)
        p2 = Producer(ch2, exchange=x, on_return=on_return)
        step("declare", True, "queue_messages=%d" % messages)
    except Exception as e:  # noqa: BLE001
        step("declare", False, "error=%r" % (e,))
        return 1

    # ---- publish: alternate channels; each publish returns after its ack
    acks = nacks = 0
    t0 = time.monotonic()
    try:
        for i in range(SPEC["count"]):
            p = p1 if i % 2 == 0 else p2
            try:
                p.publish((SPEC["body"] % (RUN, i)).encode(), routing_key=SPEC["routing_key"] % (i % 10),
                          content_type="application/octet-stream", content_encoding="binary",
                          confirm_timeout=TIMEOUT)
                acks += 1
            except amqp.exceptions.MessageNacked:
                nacks += 1
        step("publish", acks == SPEC["count"] and nacks == 0,
             "acks=%d nacks=%d returns=%d _max_in_flight=1 _ms=%d" % (acks, nacks, len(returns), (time.monotonic() - t0) * 1000))
    except Exception as e:  # noqa: BLE001
        step("publish", False, "acks=%d nacks=%d error=%r" % (acks, nacks, e))
        return 1

    # ---- mandatory, unroutable: the return comes before the ack
    try:
        pn = Producer(ch1, exchange=noroute, on_return=on_return)
        pn.publish(b"unroutable", routing_key=SPEC["noroute_key"], mandatory=True, confirm_timeout=TIMEOUT)
        r = returns[0] if returns else None
        code = getattr(r, "reply_code", None)
        text = getattr(r, "reply_text", None)
        step("mandatory", r is not None and code == 312,
             "acked=true returned=%d reply_code=%s reply_text=%s" % (len(returns), code if r else "-", text if r else "-"))
    except amqp.exceptions.MessageNacked:
        step("mandatory", False, "acked=false returned=%d" % len(returns))
    except Exception as e:  # noqa: BLE001
        step("mandatory", False, "error=%r" % (e,))
        return 1

    # ---- 1 MiB
    try:
        p1.publish(bytes(i % 251 for i in range(SPEC["big_size"])), routing_key=SPEC["big_key"],
                   content_type="application/octet-stream", content_encoding="binary", confirm_timeout=TIMEOUT)
        step("big", True, "acked=true size=%d" % SPEC["big_size"])
    except amqp.exceptions.MessageNacked:
        step("big", False, "acked=false")
    except Exception as e:  # noqa: BLE001
        step("big", False, "error=%r" % (e,))
        return 1

    # ---- every property, nested headers
    pr = SPEC["props"]
    try:
        p1.publish(
            SPEC["props_body"].encode(),
            routing_key=SPEC["props_key"],
            content_type=pr["content_type"],
            content_encoding=pr["content_encoding"],
            headers=SPEC["headers"],
            delivery_mode=pr["delivery_mode"],
            priority=pr["priority"],
            correlation_id=pr["correlation_id"] % RUN,
            reply_to=pr["reply_to"] % RUN,
            expiration=int(pr["expiration"]) / 1000,  # kombu takes seconds
            message_id=pr["message_id"] % RUN,
            timestamp=pr["timestamp"],
            type=pr["type"],
            user_id=pr["user_id"],
            app_id=pr["app_id"] % CLIENT,
            confirm_timeout=TIMEOUT,
        )
        step("props", True, "acked=true")
    except amqp.exceptions.MessageNacked:
        step("props", False, "acked=false")
    except Exception as e:  # noqa: BLE001
        step("props", False, "error=%r" % (e,))
        return 1

    # ---- close
    def close():
        ch2.close()
        ch1.close()
        conn.release()

    return close_step(close)


def delivered_properties(message):
    """py-amqp's properties, with application_headers named headers."""
    out = {}
    for k, v in message.properties.items():
        out["headers" if k == "application_headers" else k] = plain(v)
    return out


def consume_step():
    """Consume the queue with manual acks and prefetch 100 until all 1002
    came, the requeued one again; then, on a new connection, basic.get."""
    tally = Tally()
    t0 = time.monotonic()
    get_empty = None

    def on_message(message):
        info = message.delivery_info
        if tally.saw(info["routing_key"], message.body, info["redelivered"],
                     lambda: delivered_properties(message)) == "nack":
            message.requeue()
        else:
            message.ack()

    try:
        with Connection(os.environ["COMPAT_URL"], connect_timeout=TIMEOUT) as conn:
            consumer = Consumer(conn.channel(), queues=[SCENARIO_QUEUE], on_message=on_message, no_ack=False)
            consumer.qos(prefetch_count=100)
            consumer.consume()
            deadline = time.monotonic() + TIMEOUT
            while not tally.done() and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.5)
                except socket.timeout:
                    pass
            consumer.cancel()
        ms = (time.monotonic() - t0) * 1000
        if tally.done():
            time.sleep(COMMIT_WAIT)
            with Connection(os.environ["COMPAT_URL"], connect_timeout=TIMEOUT) as conn:
                get_empty = SCENARIO_QUEUE(conn.channel()).get(no_ack=False) is None
    except Exception as e:  # noqa: BLE001
        return tally.report((time.monotonic() - t0) * 1000, get_empty, e)
    return tally.report(ms, get_empty)


if __name__ == "__main__":
    sys.exit(main() or consume_step())
