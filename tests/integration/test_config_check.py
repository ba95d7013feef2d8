"""`hopper -t -c FILE` checks a config: exit 0 valid, 1 invalid with a
positioned message "FILE:LINE:COL: key: problem"."""

import re
import subprocess

import pytest

from hopperproc import SHIPPED_CONFIG, base_config, hopper_bin, to_yaml


def check(path):
    return subprocess.run(
        [hopper_bin(), "-t", "-c", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_shipped_config_is_valid():
    r = check(SHIPPED_CONFIG)
    assert r.returncode == 0, r.stdout + r.stderr


def test_generated_test_config_is_valid(tmp_path):
    # The config the other tests run with; keeps hopperproc in step with hopper.
    path = tmp_path / "generated.yaml"
    path.write_text(to_yaml(base_config(5999, "127.0.0.1:9092")) + "\n")
    r = check(path)
    assert r.returncode == 0, path.read_text() + r.stdout + r.stderr


# (name, file text, line, column (1-based), key path in the message)
UNKNOWN_KEYS = [
    (
        "nested",
        "listen:\n  address: 127.0.0.1\n  port: 5999\nlimits:\n  heartbeat: 30\n  frame_mx: 4096\n",
        6,
        3,
        "limits.frame_mx",
    ),
    ("top-level", "listen:\n  port: 5999\nlisten_port: 5672\n", 3, 1, "listen_port"),
    (
        "in-a-list",
        'routes:\n  - exchange: events\n    topic: t1\n  - exchange: other\n    topc: t2\n',
        5,
        5,
        "routes[1].topc",
    ),
]


@pytest.mark.parametrize("name,text,line,col,key", UNKNOWN_KEYS, ids=[c[0] for c in UNKNOWN_KEYS])
def test_unknown_key_is_a_positioned_error(tmp_path, name, text, line, col, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = check(path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    m = re.search(r"^%s:(\d+):(\d+): (.*)$" % re.escape(str(path)), r.stderr, re.M)
    assert m, "no 'FILE:LINE:COL: ...' line on stderr: %r" % out
    assert (int(m.group(1)), int(m.group(2))) == (line, col), m.group(0)
    assert key in m.group(3), m.group(0)
    assert "unknown" in m.group(3), m.group(0)
