"""The Makefile: a missing pkg-config package stops the build before the
first compile, naming the package and `make setup`, without breaking the
targets that run setup first; `make install` keeps an existing config.

Every make here runs with BUILD and DESTDIR in the test's tmp dir, so the
checkout's build/ is never touched."""

import os
import shutil
import subprocess
from pathlib import Path

from hopperproc import REPO, hopper_bin

PKGS = ["librabbitmq", "libevent", "rdkafka-static", "yaml-0.1"]


def make(*args, env=None, timeout=120):
    full_env = dict(os.environ)
    full_env.pop("MAKEFLAGS", None)
    full_env.pop("MAKELEVEL", None)
    full_env.update(env or {})
    return subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        timeout=timeout,
        text=True,
    )


def no_pkg_config(tmp_path):
    """Environment in which pkg-config finds no package at all."""
    d = tmp_path / "pkgconfig"
    d.mkdir()
    return {"PKG_CONFIG_LIBDIR": str(d), "PKG_CONFIG_PATH": ""}


def pkg_config_without(tmp_path, absent):
    """Environment in which pkg-config finds the system's packages but not
    the `absent` ones."""
    env = no_pkg_config(tmp_path)
    d = Path(env["PKG_CONFIG_LIBDIR"])
    pc_path = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"], stdout=subprocess.PIPE, text=True, check=True)
    for src in pc_path.stdout.strip().split(":"):
        for pc in Path(src).glob("*.pc") if Path(src).is_dir() else []:
            if pc.stem not in absent and not (d / pc.name).exists():
                (d / pc.name).symlink_to(pc)
    return env


def test_missing_packages_fail_before_compiling_and_name_them(tmp_path):
    build = tmp_path / "build"
    # RDKAFKA_PREFIX: as if make setup had not built librdkafka yet.
    r = make("BUILD=%s" % build, "RDKAFKA_PREFIX=%s" % (tmp_path / "none"), "all",
             env=no_pkg_config(tmp_path))
    assert r.returncode != 0, r.stdout
    for p in PKGS:
        assert p in r.stdout, "%s not named:\n%s" % (p, r.stdout)
    assert "make setup" in r.stdout, r.stdout
    assert not (build / "obj").exists() or not any((build / "obj").iterdir()), "compiled before failing:\n" + r.stdout


def test_one_missing_package_is_named_alone(tmp_path):
    r = make("BUILD=%s" % (tmp_path / "build"), "all", env=pkg_config_without(tmp_path, ["yaml-0.1"]))
    assert r.returncode != 0, r.stdout
    missing = [line for line in r.stdout.splitlines() if "make setup" in line]
    assert missing and "yaml-0.1" in missing[0], r.stdout
    assert not any(p in missing[0] for p in PKGS[:-1]), r.stdout


def test_targets_that_run_setup_first_still_parse_without_the_packages(tmp_path):
    # -n: what they would run. The check must not fire while the Makefile is
    # read, or setup could never install what it checks for.
    env = no_pkg_config(tmp_path)
    for target in ("setup", "check", "run"):
        r = make("-n", "BUILD=%s" % (tmp_path / "build"), target, env=env)
        assert r.returncode == 0, "make -n %s without the packages:\n%s" % (target, r.stdout)
        assert "scripts/setup.sh" in r.stdout, r.stdout


def test_install_keeps_an_existing_config(tmp_path):
    hopper = Path(hopper_bin()).resolve()
    dest = tmp_path / "root"
    # -o: take the binary as it is; the test must not rebuild it.
    args = ["-o", str(hopper), "BUILD=%s" % hopper.parent, "DESTDIR=%s" % dest, "PREFIX=/usr/local", "install"]
    conf = dest / "usr/local/etc/hopper/hopper.yaml"

    r = make(*args)
    assert r.returncode == 0, r.stdout
    assert (dest / "usr/local/bin/hopper").read_bytes() == hopper.read_bytes()
    assert conf.read_text() == (REPO / "config/hopper.yaml").read_text()

    edited = conf.read_text() + "# edited by the operator\n"
    conf.write_text(edited)
    (dest / "usr/local/bin/hopper").unlink()
    r = make(*args)
    assert r.returncode == 0, r.stdout
    assert conf.read_text() == edited, "make install overwrote the existing config"
    assert "keeping" in r.stdout and str(conf) in r.stdout, r.stdout
    assert (dest / "usr/local/bin/hopper").exists()
    shutil.rmtree(dest)
