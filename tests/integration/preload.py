"""preload - build a small LD_PRELOAD library for one test.

Some faults cannot be caused from outside the process: the wall clock
stepping back, a libevent call failing. A test writes a few lines of C that
replace the libc or libevent function, compiles them into its tmp dir with
`cc -shared -fPIC`, and starts hopper with env(...) in its environment.
"""

import os
import subprocess


def build(workdir, name, source):
    """Compile `source` (C) into workdir/name.so; returns its path."""
    src = workdir / (name + ".c")
    lib = workdir / (name + ".so")
    src.write_text(source)
    r = subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(lib), str(src), "-ldl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert r.returncode == 0, "cannot build %s:\n%s" % (lib, r.stdout)
    return lib


def env(lib, **extra):
    """hopper's environment additions to run with `lib` preloaded.

    A sanitizer runtime wants to come first in the library list; it is told
    not to check, since the preloaded library only replaces a function."""
    out = {"LD_PRELOAD": str(lib)}
    asan = os.environ.get("ASAN_OPTIONS", "")
    out["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    out.update(extra)
    return out
