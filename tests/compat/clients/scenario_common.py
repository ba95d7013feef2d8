"""What the Python scenario programs share: the scenario's values, this run's
names and the output contract (one "STEP name ok|FAIL details" line per
step; tests/compat/README.md)."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = json.load(open(os.environ.get("COMPAT_SPEC") or os.path.join(HERE, "scenario.json")))
CLIENT = os.environ.get("COMPAT_CLIENT", "")
RUN = os.environ["COMPAT_RUN"]
TIMEOUT = float(os.environ.get("COMPAT_TIMEOUT", "30"))
TARGET = os.environ.get("COMPAT_TARGET", "")
# Before the consume step's basic.get on hopper: an ack becomes a Kafka
# commit within rabbit.commit_interval (200 ms by default).
COMMIT_WAIT = 1.0 if TARGET == "hopper" else 0.0
EXCHANGE = "compat.%s.%s" % (CLIENT, RUN)
QUEUE = EXCHANGE + ".q"


def step(name, ok, detail=""):
    print("STEP %s %s %s" % (name, "ok" if ok else "FAIL", detail), flush=True)


def close_step(close, detail="reply_code=200"):
    """The last step: run close(); 0 if it went through, else 1."""
    try:
        close()
    except Exception as e:  # noqa: BLE001
        step("close", False, "error=%r" % (e,))
        return 1
    step("close", True, detail)
    return 0


def big_body():
    return bytes(i % 251 for i in range(SPEC["big_size"]))


PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")


def plain(v):
    """A decoded property or header value as JSON can carry it."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


class Tally:
    """The consume step's bookkeeping (README: the consume step): which of
    the 1002 messages arrived, how often, redelivered or not; the first
    delivery of body `<run>:0` is the one to nack with requeue."""

    def __init__(self):
        self.deliveries = self.redelivered = 0
        self.small = set()
        self.bad = 0  # bodies that are none of the 1000
        self.big = self.props = None  # body / properties as delivered
        self.nacked = self.back = False

    def saw(self, routing_key, body, redelivered, properties):
        """One delivery; returns "nack" (requeue it) or "ack"."""
        self.deliveries += 1
        self.redelivered += bool(redelivered)
        if routing_key == SPEC["big_key"]:
            self.big = body
        elif routing_key == SPEC["props_key"]:
            self.props = properties() if callable(properties) else properties
        else:
            text = body.decode("utf-8", "replace")
            try:
                rid, i = text.rsplit(":", 1)
                if rid != RUN or not 0 <= int(i) < SPEC["count"]:
                    raise ValueError(text)
                self.small.add(int(i))
            except ValueError:
                self.bad += 1
            if text == SPEC["body"] % (RUN, 0):
                if not self.nacked:
                    self.nacked = True
                    return "nack"
                self.back = self.back or bool(redelivered)
        return "ack"

    @property
    def count(self):
        return len(self.small) + (self.big is not None) + (self.props is not None)

    def done(self):
        return self.count == SPEC["count"] + 2 and self.back

    def report(self, ms, get_empty, error=None):
        """Prints the props message's properties and the step line; 0 if
        the step passed, else 1. get_empty: what basic.get said after the
        reconnect (True: get-empty, False: a message, None: not run)."""
        if self.props is not None:
            print("DELIVERED " + json.dumps(self.props, sort_keys=True), flush=True)
        bodies = "ok" if len(self.small) == SPEC["count"] and not self.bad else "WRONG"
        big = "ok" if self.big == big_body() else ("missing" if self.big is None else "WRONG")
        ok = (self.done() and self.redelivered == 1 and self.deliveries == SPEC["count"] + 3 and bodies == "ok"
              and big == "ok" and get_empty is True and error is None)
        step("consume", ok, "count=%d redelivered=%d deliveries=%d back=%s bodies=%s big=%s props=%s get=%s _ms=%d%s" % (
            self.count, self.redelivered, self.deliveries, str(self.back).lower(), bodies, big,
            "yes" if self.props is not None else "missing",
            {True: "empty", False: "message", None: "not-run"}[get_empty], ms,
            "" if error is None else " error=%s" % json.dumps(str(error))))
        return 0 if ok else 1
