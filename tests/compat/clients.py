"""clients - the AMQP client libraries of the compat matrix: pinned version,
how the runner installs each one into .cache/compat, and the command that
runs its scenario program (tests/compat/clients/).

Debian packages are installed with apt-get at the pinned version when
missing (root or sudo); the other registries install into .cache/compat.
"""

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROGRAMS = HERE / "clients"
SPEC = PROGRAMS / "scenario.json"

# The pins. Debian's are the bookworm versions; the others come from PyPI,
# npm, Maven Central and the Go module proxy.
PY_PINS = {"pika": "1.4.4", "amqp": "5.4.2", "kombu": "5.7.0", "celery": "5.7.0", "pytest": "8.3.5",
           "pytest-timeout": "2.3.1"}
NPM_AMQPLIB = "0.10.9"  # the last line whose npm package ships its tests
NPM_DEV = {"mocha": "9.2.2", "claire": "0.4.1"}  # amqplib 0.10's test runner and property tests
MAVEN_AMQP_CLIENT = "5.37.1"  # also in clients/java/pom.xml
GO_AMQP091 = "v1.16.0"  # also in clients/go/go.mod
DEBIAN = {
    "librabbitmq-dev": "0.11.0-1+deb12u3",
    "php-cli": None,
    "php-amqplib": "3.5.3-1",
    "ruby-bunny": "2.19.0-2",
    "rabbitmq-server": "3.10.8-1.1+deb12u1",
    "python3-confluent-kafka": None,
}


class InstallError(Exception):
    pass


class Ctx:
    """Paths and a bounded command runner shared by clients and suites."""

    def __init__(self, cache, log):
        self.cache = Path(cache)
        self.log = log  # callable(str)
        self.venv = self.cache / "venv"
        self.bin = self.cache / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)

    @property
    def py(self):
        return str(self.venv / "bin" / "python")

    def go_env(self):
        env = dict(os.environ)
        env.update(
            GOMODCACHE=str(self.cache / "go" / "mod"),
            GOCACHE=str(self.cache / "go" / "build"),
            GOFLAGS="-buildvcs=false -mod=mod",
            GOTOOLCHAIN="local",
        )
        return env

    def sh(self, cmd, timeout=600, cwd=None, env=None, what=None):
        """Run cmd (list); raise InstallError with the output's tail on failure."""
        self.log("$ " + " ".join(str(c) for c in cmd))
        try:
            r = subprocess.run(
                [str(c) for c in cmd],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                text=True,
            )
        except subprocess.TimeoutExpired:
            raise InstallError("%s: timed out after %ds" % (what or cmd[0], timeout)) from None
        if r.returncode != 0:
            raise InstallError("%s failed (%d): %s" % (what or cmd[0], r.returncode, r.stdout[-3000:]))
        return r.stdout


def dpkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Version}", pkg], capture_output=True, text=True)
    status, _, version = r.stdout.partition("|")
    return version if status == "install ok installed" else None


def ensure_debian(ctx, pkgs):
    """Install the Debian packages that are missing, at their pinned versions."""
    missing = [p for p in pkgs if dpkg_version(p) is None]
    if not missing:
        return
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    spec = [p + ("=" + DEBIAN[p] if DEBIAN.get(p) else "") for p in missing]
    ctx.sh(prefix + ["apt-get", "update", "-qq"], timeout=300, what="apt-get update")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ctx.sh(
        prefix + ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends"] + spec,
        timeout=900,
        env=env,
        what="apt-get install " + " ".join(spec),
    )


def ensure_venv(ctx):
    """A venv under .cache/compat with the pinned Python clients."""
    stamp = ctx.venv / ".pins"
    want = " ".join("%s==%s" % kv for kv in sorted(PY_PINS.items()))
    if stamp.exists() and stamp.read_text() == want:
        return
    if not (ctx.venv / "bin" / "python").exists():
        ctx.sh(["/usr/bin/python3", "-m", "venv", ctx.venv], what="python3 -m venv")
    ctx.sh([ctx.py, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + want.split(), timeout=600, what="pip install")
    stamp.write_text(want)


class Client:
    name = ""  # row name in the matrix
    library = ""  # what is installed
    version = ""
    mechanism = "PLAIN"  # the client's default
    steps = ("connect", "declare", "publish", "mandatory", "big", "props", "close", "consume")

    def install(self, ctx):
        raise NotImplementedError

    def command(self, ctx):
        raise NotImplementedError


class Pika(Client):
    name, library, version = "pika", "pika (PyPI)", PY_PINS["pika"]
    steps = Client.steps + ("rpc",)

    def install(self, ctx):
        ensure_venv(ctx)

    def command(self, ctx):
        return [ctx.py, PROGRAMS / "pika_scenario.py"]


class Kombu(Client):
    name, library = "kombu", "kombu + py-amqp (PyPI)"
    version = "%s / amqp %s" % (PY_PINS["kombu"], PY_PINS["amqp"])

    def install(self, ctx):
        ensure_venv(ctx)

    def command(self, ctx):
        return [ctx.py, PROGRAMS / "kombu_scenario.py"]


class Celery(Client):
    name, library = "celery", "Celery (PyPI, py-amqp transport)"
    version = "%s / kombu %s" % (PY_PINS["celery"], PY_PINS["kombu"])
    steps = ("connect", "publish", "consume", "close")

    def install(self, ctx):
        ensure_venv(ctx)

    def command(self, ctx):
        return [ctx.py, PROGRAMS / "celery_scenario.py"]


class Amqplib(Client):
    name, library, version = "amqplib", "amqplib (npm)", NPM_AMQPLIB

    def node_dir(self, ctx):
        return ctx.cache / "node"

    def install(self, ctx):
        d = self.node_dir(ctx)
        pkg = d / "node_modules" / "amqplib" / "package.json"
        if pkg.exists() and ('"version": "%s"' % NPM_AMQPLIB) in pkg.read_text():
            return
        d.mkdir(parents=True, exist_ok=True)
        ctx.sh(
            ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", d, "amqplib@" + NPM_AMQPLIB]
            + ["%s@%s" % kv for kv in NPM_DEV.items()],
            timeout=600,
            what="npm install",
        )

    def command(self, ctx):
        return ["node", PROGRAMS / "node" / "scenario.js"]

    def env(self, ctx):
        return {"NODE_PATH": str(self.node_dir(ctx) / "node_modules")}


class Java(Client):
    name, library, version = "java", "com.rabbitmq:amqp-client (Maven)", MAVEN_AMQP_CLIENT
    steps = Client.steps + ("rpc",)

    def install(self, ctx):
        lib = ctx.cache / "java" / "lib"
        jar = lib / ("amqp-client-%s.jar" % MAVEN_AMQP_CLIENT)
        if not jar.exists():
            shutil.rmtree(lib, ignore_errors=True)
            ctx.sh(
                ["mvn", "-q", "-B", "-f", PROGRAMS / "java" / "pom.xml", "-Dmaven.repo.local=%s" % (ctx.cache / "m2"),
                 "dependency:copy-dependencies", "-DoutputDirectory=%s" % lib],
                timeout=600,
                what="mvn dependency:copy-dependencies",
            )
        classes = ctx.cache / "java" / "classes"
        classes.mkdir(parents=True, exist_ok=True)
        ctx.sh(["javac", "-Xlint:-options", "-d", classes, "-cp", "%s/*" % lib, PROGRAMS / "java" / "Scenario.java"],
               timeout=300, what="javac")

    def command(self, ctx):
        j = ctx.cache / "java"
        return ["java", "-cp", "%s:%s/*" % (j / "classes", j / "lib"), "Scenario"]


class Go(Client):
    name, library, version = "go", "github.com/rabbitmq/amqp091-go (Go proxy)", GO_AMQP091

    def install(self, ctx):
        ctx.sh(["go", "build", "-o", ctx.bin / "go-scenario", "."], cwd=PROGRAMS / "go", env=ctx.go_env(),
               timeout=600, what="go build")

    def command(self, ctx):
        return [ctx.bin / "go-scenario"]


class RabbitmqC(Client):
    name, library = "rabbitmq-c", "rabbitmq-c / librabbitmq (Debian)"

    def install(self, ctx):
        ensure_debian(ctx, ["librabbitmq-dev"])
        self.version = dpkg_version("librabbitmq-dev")
        cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "librabbitmq"], capture_output=True, text=True).stdout.split()
        ctx.sh(["cc", "-std=gnu11", "-O1", "-Wall", "-o", ctx.bin / "c-scenario", PROGRAMS / "c" / "scenario.c"] + cflags,
               timeout=120, what="cc")

    def command(self, ctx):
        return [ctx.bin / "c-scenario"]


class Php(Client):
    name, library = "php-amqplib", "php-amqplib (Debian)"
    mechanism = "AMQPLAIN"

    def install(self, ctx):
        ensure_debian(ctx, ["php-cli", "php-amqplib"])
        self.version = dpkg_version("php-amqplib")

    def command(self, ctx):
        return ["php", PROGRAMS / "php" / "scenario.php"]


class Bunny(Client):
    name, library = "bunny", "bunny (Debian ruby-bunny)"

    def install(self, ctx):
        ensure_debian(ctx, ["ruby-bunny"])
        self.version = dpkg_version("ruby-bunny")

    def command(self, ctx):
        return ["ruby", PROGRAMS / "ruby" / "scenario.rb"]


ALL = [Pika, Go, Java, Kombu, Celery, Amqplib, RabbitmqC, Php, Bunny]
