"""registryproc - a schema registry of a test module's own: the stack's
Apicurio Registry run by contrib/registry/registry.sh on a free port, with
its data in the test's tmp dir (so it neither needs nor disturbs the one
`make run` starts), and a small client of its Confluent-compatible API.

Its first start on a machine builds the registry with Maven (about a
minute; `make setup` does it beforehand), hence the generous deadline."""

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from hopperproc import REPO, free_port

REGISTRY_SH = REPO / "contrib" / "registry" / "registry.sh"
# A Maven build from an empty repository, then the start itself.
START_DEADLINE = 900
STOP_DEADLINE = 60
HTTP_TIMEOUT = 10
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry:
    """The registry.sh-run registry of this module and a small client."""

    def __init__(self, data_dir):
        self.env = dict(os.environ)
        self.env.update({
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(free_port()),
            "REGISTRY_DATA": str(data_dir),
        })
        self.url = None

    def script(self, *args, timeout):
        return subprocess.run(
            [str(REGISTRY_SH), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            timeout=timeout,
            text=True,
        )

    def start(self):
        r = self.script("start", timeout=START_DEADLINE)
        if r.returncode != 0:
            pytest.fail("registry.sh start failed (%d):\n%s" % (r.returncode, r.stdout), pytrace=False)
        self.url = self.script("url", timeout=30).stdout.strip()
        assert self.url.endswith("/apis/ccompat/v7"), self.url

    def stop(self):
        r = self.script("stop", timeout=STOP_DEADLINE)
        assert r.returncode == 0, "registry.sh stop failed (%d):\n%s" % (r.returncode, r.stdout)
        r = self.script("status", timeout=30)
        assert r.returncode != 0 and "stopped" in r.stdout, r.stdout

    def call(self, method, path, body=None):
        """(HTTP status, decoded JSON body); error statuses are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def register(self, subject, schema, schema_type):
        return self.call("POST", "/subjects/%s/versions" % subject,
                         {"schema": schema, "schemaType": schema_type})

    def register_ok(self, subject, schema, schema_type):
        status, body = self.register(subject, schema, schema_type)
        assert status == 200, (status, body)
        assert isinstance(body.get("id"), int), body
        return body["id"]

    def pid(self):
        """The running registry's pid, from registry.sh status."""
        r = self.script("status", timeout=30)
        m = re.search(r"running \(pid (\d+)\)", r.stdout)
        assert m, r.stdout
        return int(m.group(1))

    def kill(self):
        """SIGKILL, as a crash: no shutdown of its own."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        r = self.script("stop", timeout=STOP_DEADLINE)  # tidies its pid file
        assert r.returncode == 0, r.stdout
