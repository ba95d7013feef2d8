#!/usr/bin/python3
"""load.py - the publisher load of the fault tests.

Several AMQP connections, each with several channels in confirm mode,
publish keyed messages with unique ids at a fixed total rate for a bounded
time, and log the outcome of every message. asyncio and a raw AMQP 0-9-1
codec instead of pika: one process keeps ~2,000 msg/s with confirms on a
busy two-core machine, the client decides per connection whether it
advertises the connection.blocked capability, and the log can record the
delivery tag of every publish (the SIGTERM drain check needs it).

Message ids are "<conn>-<chan>-<n>" (n counts per channel across
reconnects, so ids are unique in a run). Each channel owns its keys
("k<conn>-<chan>-<j>", picked with a seeded skewed distribution) and gives
each message the next sequence number of its key, so per-key order is
defined by publish order on one channel. The body is
"<id> <key> <seq> " padded to --size bytes; the message_id property is the
id. Nacked or unconfirmed messages are not republished: the log says what
happened, the verifier checks it against Kafka.

Output in --out:
  messages.tsv  id key seq conn chan gen tag t_send outcome t_outcome
                outcome: A acked, N nacked, U no outcome (connection lost
                or still pending at the end); times are Unix seconds.
  events.jsonl  connects, losses, connection.blocked/unblocked, closes.
  summary.json  counts.

Stops at --duration, or earlier on SIGUSR1 or SIGTERM/SIGINT; then waits
up to --settle seconds for outstanding confirms. Exit 0 unless the load
could not run at all (never connected)."""

import argparse
import asyncio
import json
import os
import random
import signal
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from amqpwire import (  # noqa: E402  (the integration tests' frame codec)
    BASIC_ACK,
    BASIC_NACK,
    BASIC_PUBLISH,
    CHANNEL_CLOSE,
    CHANNEL_OPEN,
    CHANNEL_OPEN_OK,
    CONFIRM_SELECT,
    CONFIRM_SELECT_OK,
    CONNECTION_BLOCKED,
    CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK,
    CONNECTION_OPEN,
    CONNECTION_OPEN_OK,
    CONNECTION_START,
    CONNECTION_START_OK,
    CONNECTION_TUNE,
    CONNECTION_TUNE_OK,
    CONNECTION_UNBLOCKED,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    PROTOCOL_HEADER,
    frame,
    longstr,
    method_frame,
    shortstr,
    table,
)


class ConnLost(Exception):
    pass


class Channel:
    """One confirm-mode channel: its keys, its sequence numbers, its pending tags."""

    def __init__(self, load, conn_no, chan_no):
        self.load = load
        self.conn_no = conn_no
        self.no = chan_no
        self.rng = random.Random("%d/%d/%d" % (load.args.seed, conn_no, chan_no))
        k = load.args.keys
        self.keys = ["k%d-%d-%d" % (conn_no, chan_no, j) for j in range(k)]
        # Skewed key popularity (weight 1/(j+1)): some partitions are busier.
        self.weights = [1.0 / (j + 1) for j in range(k)]
        self.next_seq = {key: 0 for key in self.keys}
        self.n = 0  # messages created on this channel, across reconnects
        self.pending = {}  # delivery tag -> message record, in tag order
        self.next_tag = 1
        self.sent_mark = None  # schedule position: messages due so far

    def reset(self):
        self.pending = {}
        self.next_tag = 1

    def new_message(self, gen):
        key = self.rng.choices(self.keys, self.weights)[0]
        seq = self.next_seq[key]
        self.next_seq[key] = seq + 1
        msg_id = "%d-%d-%d" % (self.conn_no, self.no, self.n)
        self.n += 1
        tag = self.next_tag
        self.next_tag += 1
        # id key seq conn chan gen tag t_send outcome t_outcome
        rec = [msg_id, key, seq, self.conn_no, self.no, gen, tag, 0.0, "U", 0.0]
        self.pending[tag] = rec
        self.load.records.append(rec)
        return rec

    def settle(self, tag, multiple, outcome, now):
        if multiple:
            done = []
            for t in self.pending:
                if t > tag:
                    break
                done.append(t)
        else:
            if tag not in self.pending:
                self.load.event("bad_confirm", conn=self.conn_no, chan=self.no, tag=tag, outcome=outcome)
                return
            done = [tag]
        for t in done:
            rec = self.pending.pop(t)
            rec[8] = outcome
            rec[9] = now
            if outcome == "A":
                self.load.acked += 1
            else:
                self.load.nacked += 1


class Connection:
    def __init__(self, load, no):
        self.load = load
        self.no = no
        self.args = load.args
        self.capable = (no % 2 == 0) if self.args.blocked_capable == "half" else self.args.blocked_capable == "all"
        self.channels = [Channel(load, no, h + 1) for h in range(self.args.channels)]
        self.gen = 0
        self.writer = None
        self.blocked = False

    async def run(self):
        a = self.args
        while not self.load.stopping:
            try:
                await self.session()
            except Exception as e:  # any failure of this session: reconnect
                self.load.event("lost", conn=self.no, gen=self.gen, why=repr(e)[:200])
            finally:
                self.drop()
            if self.load.stopping:
                break
            await asyncio.sleep(a.reconnect_delay)

    def drop(self):
        lost = 0
        for ch in self.channels:
            lost += len(ch.pending)
            ch.reset()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if lost:
            self.load.event("unsettled_on_loss", conn=self.no, gen=self.gen, count=lost)
        self.gen += 1
        self.blocked = False

    async def read_frame(self, reader):
        hdr = await reader.readexactly(7)
        kind, channel, size = struct.unpack(">BHI", hdr)
        payload = await reader.readexactly(size + 1)
        if payload[-1] != FRAME_END:
            raise ConnLost("bad frame end")
        return kind, channel, payload[:-1]

    async def expect(self, reader, m):
        while True:
            kind, channel, payload = await self.read_frame(reader)
            if kind == FRAME_HEARTBEAT:
                continue
            got = struct.unpack(">HH", payload[:4]) if kind == FRAME_METHOD else None
            if got == CONNECTION_CLOSE:
                raise ConnLost("connection.close during setup: %r" % payload[4:80])
            if got != m:
                raise ConnLost("expected %r, got %r" % (m, got))
            return payload[4:]

    async def session(self):
        a = self.args
        reader, writer = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 5)
        self.writer = writer
        writer.transport.set_write_buffer_limits(high=256 * 1024)
        writer.write(PROTOCOL_HEADER)
        await asyncio.wait_for(self.expect(reader, CONNECTION_START), 10)
        caps = {"publisher_confirms": True, "basic.nack": True}
        if self.capable:
            caps["connection.blocked"] = True
        props = table({"product": "hopper-faults-load", "capabilities": caps})
        resp = b"\x00" + a.user.encode() + b"\x00" + a.password.encode()
        writer.write(method_frame(0, CONNECTION_START_OK, props + shortstr("PLAIN") + longstr(resp) + shortstr("en_US")))
        tune = await asyncio.wait_for(self.expect(reader, CONNECTION_TUNE), 10)
        channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
        self.frame_max = min(frame_max or 131072, 131072)
        writer.write(method_frame(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, self.frame_max, 0)))
        writer.write(method_frame(0, CONNECTION_OPEN, shortstr("/") + shortstr("") + b"\x00"))
        await asyncio.wait_for(self.expect(reader, CONNECTION_OPEN_OK), 10)
        for ch in self.channels:
            writer.write(method_frame(ch.no, CHANNEL_OPEN, shortstr("")))
            await asyncio.wait_for(self.expect(reader, CHANNEL_OPEN_OK), 10)
            writer.write(method_frame(ch.no, CONFIRM_SELECT, b"\x00"))
            await asyncio.wait_for(self.expect(reader, CONFIRM_SELECT_OK), 10)
        self.load.event("connected", conn=self.no, gen=self.gen, capable=self.capable)
        self.load.connected_once = True
        tasks = [asyncio.ensure_future(self.reader_loop(reader))]
        tasks += [asyncio.ensure_future(self.publish_loop(ch)) for ch in self.channels]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception():
                    raise t.exception()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reader_loop(self, reader):
        chans = {ch.no: ch for ch in self.channels}
        while True:
            kind, channel, payload = await self.read_frame(reader)
            if kind != FRAME_METHOD:
                continue
            m = struct.unpack(">HH", payload[:4])
            now = time.time()
            if m == BASIC_ACK or m == BASIC_NACK:
                tag = struct.unpack(">Q", payload[4:12])[0]
                multiple = bool(payload[12] & 1)
                chans[channel].settle(tag, multiple, "A" if m == BASIC_ACK else "N", now)
            elif m == CONNECTION_BLOCKED:
                self.blocked = True
                self.load.event("blocked", conn=self.no, gen=self.gen, capable=self.capable)
            elif m == CONNECTION_UNBLOCKED:
                self.blocked = False
                self.load.event("unblocked", conn=self.no, gen=self.gen, capable=self.capable)
            elif m == CONNECTION_CLOSE:
                code = struct.unpack(">H", payload[4:6])[0]
                self.load.event("close", conn=self.no, gen=self.gen, code=code, text=payload[7 : 7 + payload[6]].decode(errors="replace"))
                try:
                    self.writer.write(method_frame(0, CONNECTION_CLOSE_OK))
                except Exception:
                    pass
                raise ConnLost("connection.close %d" % code)
            elif m == CHANNEL_CLOSE:
                code = struct.unpack(">H", payload[4:6])[0]
                self.load.event("channel_close", conn=self.no, gen=self.gen, chan=channel, code=code)
                raise ConnLost("channel.close %d on %d" % (code, channel))

    async def publish_loop(self, ch):
        a = self.args
        load = self.load
        rate = a.rate / (a.connections * a.channels)
        while not load.stopping:
            now = time.time()
            due = int((now - load.t0) * rate)
            if ch.sent_mark is None:
                ch.sent_mark = due
            backlog = due - ch.sent_mark
            if backlog > rate:  # more than a second behind: skip, do not burst
                load.skipped += backlog - int(rate)
                ch.sent_mark = due - int(rate)
                backlog = int(rate)
            if backlog > 0:
                out = []
                for _ in range(backlog):
                    rec = ch.new_message(self.gen)
                    out.append(self.publish_frames(ch, rec))
                    rec[7] = now
                ch.sent_mark += backlog
                load.sent += backlog
                self.writer.write(b"".join(out))
                if self.writer.transport.get_write_buffer_size() > 0:
                    # TCP pushes back (hopper stopped reading): wait, do not buffer.
                    t = time.time()
                    await self.writer.drain()
                    if time.time() - t > 0.5:
                        load.event("write_stall", conn=self.no, gen=self.gen, start=t, seconds=round(time.time() - t, 2))
            await asyncio.sleep(a.tick)

    def publish_frames(self, ch, rec):
        a = self.args
        body = ("%s %s %d " % (rec[0], rec[1], rec[2])).encode().ljust(a.size, b".")
        args = struct.pack(">H", 0) + self.load.exchange + shortstr(rec[1]) + b"\x00"
        # delivery_mode (0x1000) and message_id (0x0080)
        props = struct.pack(">H", 0x1080) + b"\x02" + shortstr(rec[0])
        header = struct.pack(">HHQ", 60, 0, len(body)) + props
        return method_frame(ch.no, BASIC_PUBLISH, args) + frame(FRAME_HEADER, ch.no, header) + frame(FRAME_BODY, ch.no, body)

    def pending(self):
        return sum(len(ch.pending) for ch in self.channels)


class Load:
    def __init__(self, args):
        self.args = args
        self.exchange = shortstr(args.exchange)
        self.records = []
        self.events = open(os.path.join(args.out, "events.jsonl"), "w")
        self.stopping = False
        self.connected_once = False
        self.sent = self.acked = self.nacked = self.skipped = 0
        self.t0 = time.time()

    def event(self, kind, **kw):
        kw["t"] = time.time()
        kw["event"] = kind
        self.events.write(json.dumps(kw) + "\n")
        self.events.flush()

    def stop(self, why):
        if not self.stopping:
            self.event("stop", why=why)
        self.stopping = True

    async def run(self):
        a = self.args
        loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGUSR1, "SIGUSR1"), (signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            loop.add_signal_handler(sig, self.stop, why)
        self.conns = [Connection(self, i + 1) for i in range(a.connections)]
        self.event("start", rate=a.rate, connections=a.connections, channels=a.channels, seed=a.seed)
        tasks = [asyncio.ensure_future(c.run()) for c in self.conns]
        deadline = self.t0 + a.duration
        last_report = time.time()
        while not self.stopping and time.time() < deadline:
            await asyncio.sleep(0.2)
            if a.progress and time.time() - last_report >= a.progress:
                last_report = time.time()
                print(
                    "load: t=%.0f sent=%d acked=%d nacked=%d pending=%d skipped=%d"
                    % (time.time() - self.t0, self.sent, self.acked, self.nacked, self.pending(), self.skipped),
                    file=sys.stderr,
                    flush=True,
                )
        self.stop("duration")
        self.t_stop = time.time()
        # Publish loops end at their next tick; connections stay open until
        # every confirm arrived or the settle time is up.
        settle_deadline = time.time() + a.settle
        while self.pending() and time.time() < settle_deadline:
            await asyncio.sleep(0.1)
        self.event("settled", pending=self.pending())
        for c in self.conns:
            if c.writer is not None:
                try:
                    c.writer.write(method_frame(0, CONNECTION_CLOSE, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)))
                except Exception:
                    pass
        await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def pending(self):
        return sum(c.pending() for c in self.conns)

    def write(self):
        a = self.args
        path = os.path.join(a.out, "messages.tsv")
        with open(path + ".tmp", "w") as f:
            f.write("id\tkey\tseq\tconn\tchan\tgen\ttag\tt_send\toutcome\tt_outcome\n")
            for r in self.records:
                f.write("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.6f\t%s\t%.6f\n" % tuple(r))
        os.replace(path + ".tmp", path)
        outcomes = {"A": 0, "N": 0, "U": 0}
        for r in self.records:
            outcomes[r[8]] += 1
        summary = {
            "t0": self.t0,
            "t_stop": getattr(self, "t_stop", time.time()),
            "sent": self.sent,
            "acked": outcomes["A"],
            "nacked": outcomes["N"],
            "unconfirmed": outcomes["U"],
            "skipped": self.skipped,
            "connected_once": self.connected_once,
            "args": vars(a),
        }
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        self.events.close()
        return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5672)
    p.add_argument("--user", default="guest")
    p.add_argument("--password", default="guest")
    p.add_argument("--exchange", default="load")
    p.add_argument("--rate", type=float, default=2000, help="messages per second, all channels together")
    p.add_argument("--duration", type=float, default=60, help="seconds of publishing at most")
    p.add_argument("--settle", type=float, default=30, help="seconds to wait for outstanding confirms")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--channels", type=int, default=2, help="per connection")
    p.add_argument("--keys", type=int, default=16, help="keys per channel")
    p.add_argument("--size", type=int, default=200, help="body bytes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--blocked-capable", choices=("all", "half", "none"), default="half")
    p.add_argument("--tick", type=float, default=0.01)
    p.add_argument("--reconnect-delay", type=float, default=0.5)
    p.add_argument("--progress", type=float, default=5, help="seconds between progress lines (0: none)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    load = Load(args)
    try:
        asyncio.run(load.run())
    finally:
        summary = load.write()
    print("load: " + json.dumps({k: summary[k] for k in ("sent", "acked", "nacked", "unconfirmed", "skipped")}), file=sys.stderr)
    return 0 if summary["connected_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
