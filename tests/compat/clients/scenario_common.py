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
