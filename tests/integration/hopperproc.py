"""hopperproc - generate hopper configs and run the real binary for a test.

Each test gets its own hopper on a free port with a config written into the
test's tmp dir (same structure as config/hopper.yaml). Stopping sends SIGTERM
and requires exit code 0 within a deadline: a clean drain is part of every
test.

HOPPER_WRAPPER (optional) is a command line put in front of hopper, e.g.
`valgrind --error-exitcode=99 --leak-check=full`. Everything is slower under
such a wrapper, so every deadline the helpers and fixtures own is multiplied
by HOPPER_TIMEOUT_SCALE (default 1, or 5 when a wrapper is set).
"""

import copy
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "hopper.yaml"
CLUSTER_SH = REPO / "contrib" / "kafka" / "cluster.sh"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"

STOP_TIMEOUT = 15.0
CLUSTER_TIMEOUT = 300


def hopper_wrapper():
    """The HOPPER_WRAPPER command as a list (empty when unset)."""
    return shlex.split(os.environ.get("HOPPER_WRAPPER", ""))


def _timeout_scale():
    raw = os.environ.get("HOPPER_TIMEOUT_SCALE")
    if raw:
        return float(raw)
    return 5.0 if hopper_wrapper() else 1.0


# Multiplier for deadlines that depend on hopper's speed (see the header).
TIMEOUT_SCALE = _timeout_scale()


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def under_valgrind():
    return any(os.path.basename(part) == "valgrind" for part in hopper_wrapper())


def sanitized():
    """True for a `make SANITIZE=...` build (the Makefile says so): ASan's
    shadow memory and redzones inflate RSS, so memory bounds get slack."""
    return bool(os.environ.get("HOPPER_SANITIZE"))


def cluster(*args, timeout=CLUSTER_TIMEOUT):
    """Run contrib/kafka/cluster.sh; returns CompletedProcess (never raises on rc)."""
    return subprocess.run(
        [str(CLUSTER_SH), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        text=True,
    )


def ensure_cluster():
    """Start the cluster if needed (idempotent); fails the test if it cannot."""
    import pytest

    r = cluster("start")
    if r.returncode != 0:
        pytest.fail("contrib/kafka/cluster.sh start failed (%d):\n%s" % (r.returncode, r.stdout[-4000:]), pytrace=False)


def hopper_bin():
    return os.environ.get("HOPPER_BIN") or str(REPO / "build" / "hopper")


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port free now that no outgoing connection can take before the
    server meant for it listens: below the kernel's ephemeral range. A port
    from bind(0) lies inside it, and on a busy machine (Kafka clients
    connecting all the time) one was taken as a connection's local port
    before RabbitMQ could listen on it (eaddrinuse, CI)."""
    low = min(_ephemeral_low(), 32768)
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(10000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000-%d" % low)


# ---- config -----------------------------------------------------------------------


def base_config(port, bootstrap):
    """The structure and values of config/hopper.yaml, on `port`."""
    return {
        "listen": {"address": "127.0.0.1", "port": port},
        "limits": {
            "max_connections": 1024,
            "channel_max": 2047,
            "frame_max": 131072,
            "max_message_size": 8388608,
            "heartbeat": 60,
            "handshake_timeout": 10000,
            "max_table_depth": 16,
            "max_unconfirmed": 10000,
            "max_inflight_bytes": 67108864,
            "drain_timeout": 10000,
        },
        "users": [{"name": "guest", "password": "guest", "loopback_only": True}],
        "vhosts": ["/"],
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_prefix": "",
            "auto_create_topics": True,
            "topic_partitions": 3,
            "replication_factor": 3,
            "min_insync_replicas": 2,
            # As config/hopper.yaml: hopper's own linger.ms.
            "properties": {"socket.nagle.disable": True},
        },
        "default_route": True,
        "exchanges": [{"name": "events", "type": "topic", "vhost": "/"}],
        "routes": [
            {"exchange": "events", "routing_key": "#", "topic": "events-topic", "key": "routing_key"}
        ],
    }


def _scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    # JSON string escapes are valid in YAML double-quoted scalars.
    return json.dumps(str(v))


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (strings always quoted)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _scalar(str(k))
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, key))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, key))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, key))
            else:
                lines.append("%s%s: %s" % (pad, key, _scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(pad + "- " + inner[indent + 2 :])
            else:
                lines.append("%s- %s" % (pad, _scalar(item)))
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


def deep_merge(base, overrides):
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---- process ---------------------------------------------------------------------


class HopperFailed(AssertionError):
    pass


class Hopper:
    """One running hopper: port, url, log path, config path, process."""

    def __init__(self, workdir, bootstrap, config_overrides=None, env=None, name="hopper", args=()):
        self.workdir = Path(workdir)
        self.args = list(args)  # extra command-line arguments, e.g. ["--enable-rabbit"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = deep_merge(base_config(self.port, bootstrap), config_overrides or {})
        self.config_path = self.workdir / (name + ".yaml")
        self.config_path.write_text(to_yaml(self.config) + "\n")
        self.log_path = self.workdir / (name + ".log")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.exit_code = None

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2F" % self.port

    def start(self, timeout=15.0):
        timeout = scaled(timeout)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            hopper_wrapper() + [hopper_bin(), "-c", str(self.config_path)] + self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HopperFailed(
                    "hopper exited with %d during startup\n%s" % (self.proc.returncode, self.log_tail())
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise HopperFailed("hopper not listening on %d after %.0fs\n%s" % (self.port, timeout, self.log_tail()))
            time.sleep(0.05)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        text = self.log_text().splitlines()
        return "----- %s (last %d lines) -----\n%s" % (self.log_path, lines, "\n".join(text[-lines:]))

    def sanitizer_report(self, context=12):
        """The first ASan/UBSan/LSan report in the log, or None."""
        lines = self.log_text().splitlines()
        for i, line in enumerate(lines):
            if "runtime error:" in line or "ERROR: AddressSanitizer" in line or "ERROR: LeakSanitizer" in line:
                return "\n".join(lines[i : i + context])
        return None

    def valgrind_report(self):
        """What valgrind's summary in the log says is wrong, or None.

        Expects the summary of a finished run: "ERROR SUMMARY: 0 errors" and
        no definitely lost bytes (with --leak-check=full valgrind prints
        either a LEAK SUMMARY or "no leaks are possible")."""
        text = self.log_text()
        summary = re.findall(r"==\d+== ERROR SUMMARY: (\d+) errors", text)
        if not summary:
            return "no valgrind ERROR SUMMARY in %s (did valgrind finish?)" % self.log_path
        problems = []
        if summary[-1] != "0":
            problems.append("valgrind: %s errors" % summary[-1])
        lost = re.findall(r"==\d+==\s+definitely lost: ([\d,]+) bytes", text)
        if lost and lost[-1] != "0":
            problems.append("valgrind: definitely lost %s bytes" % lost[-1])
        if not problems:
            return None
        first = next((i for i, line in enumerate(text.splitlines()) if re.match(r"==\d+== (Invalid|Conditional|Use of|Syscall param|Mismatched|\d+ bytes in)", line)), None)
        detail = "\n".join(text.splitlines()[first : first + 40]) if first is not None else ""
        return "; ".join(problems) + ("\n" + detail if detail else "")

    def rss_kib(self):
        """hopper's resident set size (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    def wait_for_log(self, needle, timeout=15.0):
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if time.monotonic() >= deadline:
                raise AssertionError("%r not in hopper's log within %.0fs\n%s" % (needle, timeout, self.log_tail()))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for hopper to exit by itself; returns the exit code."""
        timeout = scaled(timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HopperFailed("hopper still running after %.0fs\n%s" % (timeout, self.log_tail())) from None
        return self.stop()

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; returns the exit code (kills and raises on timeout)."""
        timeout = scaled(timeout)
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self._log.close()
                raise HopperFailed(
                    "hopper did not exit within %.0fs of SIGTERM (killed)\n%s" % (timeout, self.log_tail())
                )
        self._log.close()
        self.exit_code = self.proc.returncode
        return self.exit_code
