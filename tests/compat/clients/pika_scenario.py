"""The compat scenario for pika (asynchronous adapter, so that many publishes
are in flight at once; the consume step uses the blocking adapter, the one
whose basic_get reports get-empty). See tests/compat/README.md for the steps
and the output contract; the values come from scenario.json."""

import asyncio
import os
import sys
import time

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from scenario_common import (CLIENT, COMMIT_WAIT, EXCHANGE, PROPERTY_NAMES, QUEUE, RUN, SPEC, TIMEOUT, Tally,
                             big_body, plain, step)


def props_message():
    p = SPEC["props"]
    return pika.BasicProperties(
        content_type=p["content_type"],
        content_encoding=p["content_encoding"],
        headers=SPEC["headers"],
        delivery_mode=p["delivery_mode"],
        priority=p["priority"],
        correlation_id=p["correlation_id"] % RUN,
        reply_to=p["reply_to"] % RUN,
        expiration=p["expiration"],
        message_id=p["message_id"] % RUN,
        timestamp=p["timestamp"],
        type=p["type"],
        user_id=p["user_id"],
        app_id=p["app_id"] % CLIENT,
    )


class Confirms:
    """Publisher-confirm bookkeeping for one channel."""

    def __init__(self, loop):
        self.loop = loop
        self.next_tag = 1
        self.pending = {}  # tag -> future
        self.acks = self.nacks = 0
        self.max_in_flight = 0

    def expect(self):
        fut = self.loop.create_future()
        self.pending[self.next_tag] = fut
        self.next_tag += 1
        self.max_in_flight = max(self.max_in_flight, len(self.pending))
        return fut

    def on_confirm(self, frame):
        m = frame.method
        ack = isinstance(m, pika.spec.Basic.Ack)
        tags = [t for t in self.pending if t <= m.delivery_tag] if m.multiple else [m.delivery_tag]
        for t in tags:
            fut = self.pending.pop(t, None)
            if fut is None:
                continue
            if ack:
                self.acks += 1
            else:
                self.nacks += 1
            if not fut.done():
                fut.set_result(ack)

    def fail_all(self, exc):
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self.pending.clear()


async def main():
    loop = asyncio.get_running_loop()
    params = pika.URLParameters(os.environ["COMPAT_URL"])
    closed = loop.create_future()

    def done(fut, value=None, exc=None):
        if not fut.done():
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

    # ---- connect
    opened = loop.create_future()
    conn = AsyncioConnection(
        params,
        on_open_callback=lambda c: done(opened, c),
        on_open_error_callback=lambda c, e: done(opened, exc=RuntimeError("open failed: %r" % (e,))),
        on_close_callback=lambda c, reason: (done(opened, exc=RuntimeError(repr(reason))), done(closed, reason)),
        custom_ioloop=loop,
    )
    try:
        await asyncio.wait_for(opened, TIMEOUT)
    except Exception as e:  # noqa: BLE001
        step("connect", False, "error=%r" % (e,))
        return 1
    step("connect", True, "mechanism=PLAIN _version=%s" % pika.__version__)

    channel_errors = []

    async def open_channel():
        fut = loop.create_future()
        ch = conn.channel(on_open_callback=lambda c: done(fut, c))
        confirms = Confirms(loop)
        returns = []

        def on_close(c, reason):
            if not isinstance(reason, pika.exceptions.ChannelClosedByClient):
                channel_errors.append(reason)
            confirms.fail_all(RuntimeError("channel closed: %r" % (reason,)))
            done(fut, exc=RuntimeError(repr(reason)))

        ch.add_on_close_callback(on_close)
        ch.add_on_return_callback(lambda c, method, props, body: returns.append(method))
        await asyncio.wait_for(fut, TIMEOUT)
        sel = loop.create_future()
        ch.confirm_delivery(confirms.on_confirm, callback=lambda f: done(sel, f))
        await asyncio.wait_for(sel, TIMEOUT)
        return ch, confirms, returns

    async def rpc(fn, *args, **kw):
        fut = loop.create_future()
        fn(*args, callback=lambda f: done(fut, f), **kw)
        return await asyncio.wait_for(fut, TIMEOUT)

    # ---- declare
    try:
        ch1, conf1, ret1 = await open_channel()
        ch2, conf2, ret2 = await open_channel()
        await rpc(ch1.exchange_declare, exchange=EXCHANGE, exchange_type="topic")
        q = await rpc(ch1.queue_declare, queue=QUEUE, durable=True)
        await rpc(ch1.queue_bind, queue=QUEUE, exchange=EXCHANGE, routing_key=SPEC["binding"])
        await rpc(ch1.exchange_declare, exchange=SPEC["noroute_exchange"], exchange_type="topic", durable=True)
        step("declare", True, "queue_messages=%d" % q.method.message_count)
    except Exception as e:  # noqa: BLE001
        step("declare", False, "error=%r" % (e,))
        return 1

    # ---- publish: 1000 over two channels, all in flight at once
    try:
        t0 = time.monotonic()
        futs = []
        for i in range(SPEC["count"]):
            ch, conf = (ch1, conf1) if i % 2 == 0 else (ch2, conf2)
            futs.append(conf.expect())
            ch.basic_publish(EXCHANGE, SPEC["routing_key"] % (i % 10), (SPEC["body"] % (RUN, i)).encode())
        await asyncio.wait_for(asyncio.gather(*futs), TIMEOUT)
        acks, nacks = conf1.acks + conf2.acks, conf1.nacks + conf2.nacks
        step(
            "publish",
            acks == SPEC["count"] and nacks == 0,
            "acks=%d nacks=%d returns=%d _max_in_flight=%d _ms=%d"
            % (acks, nacks, len(ret1) + len(ret2), conf1.max_in_flight + conf2.max_in_flight, (time.monotonic() - t0) * 1000),
        )
    except Exception as e:  # noqa: BLE001
        step("publish", False, "acks=%d nacks=%d error=%r" % (conf1.acks + conf2.acks, conf1.nacks + conf2.nacks, e))
        return 1

    # ---- mandatory, unroutable: basic.return then the ack
    try:
        fut = conf1.expect()
        ch1.basic_publish(SPEC["noroute_exchange"], SPEC["noroute_key"], b"unroutable", mandatory=True)
        ack = await asyncio.wait_for(fut, TIMEOUT)
        r = ret1[0] if ret1 else None
        ok = ack and r is not None and r.reply_code == 312
        step(
            "mandatory",
            ok,
            "acked=%s returned=%d reply_code=%s reply_text=%s"
            % (str(ack).lower(), len(ret1), r.reply_code if r else "-", r.reply_text if r else "-"),
        )
    except Exception as e:  # noqa: BLE001
        step("mandatory", False, "error=%r" % (e,))
        return 1

    # ---- 1 MiB message
    try:
        fut = conf1.expect()
        ch1.basic_publish(EXCHANGE, SPEC["big_key"], big_body())
        ack = await asyncio.wait_for(fut, TIMEOUT)
        step("big", ack, "acked=%s size=%d" % (str(ack).lower(), SPEC["big_size"]))
    except Exception as e:  # noqa: BLE001
        step("big", False, "error=%r" % (e,))
        return 1

    # ---- every property, nested headers
    try:
        fut = conf1.expect()
        ch1.basic_publish(EXCHANGE, SPEC["props_key"], SPEC["props_body"].encode(), properties=props_message())
        ack = await asyncio.wait_for(fut, TIMEOUT)
        step("props", ack, "acked=%s" % str(ack).lower())
    except Exception as e:  # noqa: BLE001
        step("props", False, "error=%r" % (e,))
        return 1

    # ---- close
    try:
        for ch in (ch2, ch1):
            fut = loop.create_future()
            ch.add_on_close_callback(lambda c, reason, fut=fut: done(fut, reason))
            ch.close()
            await asyncio.wait_for(fut, TIMEOUT)
        conn.close()
        reason = await asyncio.wait_for(closed, TIMEOUT)
        code = getattr(reason, "reply_code", None)
        step("close", code == 200 and not channel_errors, "reply_code=%s" % code)
    except Exception as e:  # noqa: BLE001
        step("close", False, "error=%r" % (e,))
        return 1
    return 0


def consume_step():
    """Consume the queue with manual acks and prefetch 100 until all 1002
    came, the nacked one again; then, on a new connection, basic.get."""
    tally = Tally()
    t0 = time.monotonic()
    get_empty = None
    params = pika.URLParameters(os.environ["COMPAT_URL"])
    try:
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)
        deadline = time.monotonic() + TIMEOUT
        for method, props, body in ch.consume(QUEUE, auto_ack=False, inactivity_timeout=0.5):
            if method is not None:
                what = tally.saw(method.routing_key, body, method.redelivered,
                                 lambda: {k: plain(getattr(props, k)) for k in PROPERTY_NAMES
                                          if getattr(props, k, None) is not None})
                if what == "nack":
                    ch.basic_nack(method.delivery_tag, requeue=True)
                else:
                    ch.basic_ack(method.delivery_tag)
            if tally.done() or time.monotonic() > deadline:
                break
        ch.cancel()
        ms = (time.monotonic() - t0) * 1000
        conn.close()
        if tally.done():
            time.sleep(COMMIT_WAIT)
            conn = pika.BlockingConnection(params)
            method, _, _ = conn.channel().basic_get(QUEUE, auto_ack=False)
            get_empty = method is None
            conn.close()
    except Exception as e:  # noqa: BLE001
        return tally.report((time.monotonic() - t0) * 1000, get_empty, e)
    return tally.report(ms, get_empty)


RT = "amq.rabbitmq.reply-to"


def rpc_step():
    """RPC with direct reply-to, as pika's RPC example does it: a reply
    consumer on amq.rabbitmq.reply-to (no-ack), requests through a durable
    queue (on hopper, Kafka), the replies straight back."""
    t0 = time.monotonic()
    rq = EXCHANGE + ".rpc"
    params = pika.URLParameters(os.environ["COMPAT_URL"])
    calls, answered, seen, error = 3, 0, set(), None
    try:
        server, client = pika.BlockingConnection(params), pika.BlockingConnection(params)
        sch, cch = server.channel(), client.channel()
        sch.queue_declare(rq, durable=True)
        replies = {}
        cch.basic_consume(RT, lambda c, m, p, b: replies.__setitem__(p.correlation_id, b), auto_ack=True)

        def on_request(c, method, props, body):
            seen.add(props.reply_to)
            c.basic_publish("", props.reply_to, body.upper(), pika.BasicProperties(correlation_id=props.correlation_id))
            c.basic_ack(method.delivery_tag)

        sch.basic_consume(rq, on_request)
        deadline = time.monotonic() + TIMEOUT
        for i in range(calls):
            cid = "%s-%d" % (RUN, i)
            cch.basic_publish("", rq, b"call %d" % i, pika.BasicProperties(reply_to=RT, correlation_id=cid))
            while cid not in replies and time.monotonic() < deadline:
                server.process_data_events(0.02)
                client.process_data_events(0.02)
            answered += replies.get(cid) == b"CALL %d" % i
        sch.queue_delete(rq)
        client.close()
        server.close()
    except Exception as e:  # noqa: BLE001
        error = e
    rewritten = len(seen) == 1 and next(iter(seen)).startswith(RT + ".")
    reply_to = "rewritten" if rewritten else ",".join(sorted(map(str, seen))) or "-"
    step("rpc", error is None and answered == calls and rewritten,
         "calls=%d answered=%d reply_to=%s _ms=%d%s" % (calls, answered, reply_to, (time.monotonic() - t0) * 1000,
                                                        " error=%r" % (error,) if error else ""))
    return 0 if error is None and answered == calls and rewritten else 1


if __name__ == "__main__":
    rc = asyncio.run(main())
    sys.exit(rc or max(consume_step(), rpc_step()))
