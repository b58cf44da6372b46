"""The server caps glibc's malloc arenas (janusmail.process_memory): threads that each allocate a little then
share two arenas instead of one each (the per-connection memory of a fresh server, issue 10). Checked in a
child process, by glibc's own account of its arenas (``malloc_info``), so the test sees the cap's effect."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent('''
    import ctypes, ctypes.util, os, sys, tempfile, threading
    from janusmail.process_memory import limit_malloc_arenas
    capped = limit_malloc_arenas() if sys.argv[1] == "cap" else False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    started, go = threading.Barrier(17), threading.Event()
    def work():
        started.wait()
        libc.malloc(100_000)  # (kept: the arena stays in use)
        go.wait()
    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    started.wait()
    path = tempfile.mktemp()
    fp = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    go.set()
    for t in threads:
        t.join()
    print(capped, open(path).read().count("<heap nr="))
    os.unlink(path)
''')


def _arenas(mode: str, env: dict[str, str]) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc's arenas")
def test_threads_share_two_arenas_unless_the_environment_says_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    capped, arenas = _arenas("cap", env)
    assert capped and arenas <= 2, arenas
    _, uncapped = _arenas("none", env)
    assert uncapped > 2, uncapped  # (glibc's default: up to eight per CPU; sixteen threads allocated at once)
    capped, arenas = _arenas("cap", {**env, "MALLOC_ARENA_MAX": "3"})
    assert not capped and arenas <= 3, arenas  # the administrator's setting stands
