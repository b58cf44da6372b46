"""How the server process asks the C allocator to hold memory (glibc's malloc arenas).

Why: glibc gives a thread that meets a busy arena an arena of its own, up to eight per CPU, and memory freed in
one arena never serves another. The server has many threads that allocate a little and then idle (the login
pool sized for the hash gate's queue, argon2's own threads, the store's readers, ingest and writer threads): on a
fresh server 1,000 IDLE connections cost 19.2 KiB each in resident memory, where after the first fifty they
cost 10.8 (``bench/push_scale.py --scenario fanout``; issue 10 asks for at most 16 from a fresh server). With
two arenas the same run measured 15.1 and 9.0 KiB. Python code runs under the GIL, so its allocations hardly
contend for an arena; the threads that allocate without it (SQLite's page cache, argon2) are few.

An administrator's own ``MALLOC_ARENA_MAX`` in the environment wins (glibc read it at start-up; this leaves it
alone). On a C library other than glibc there is nothing to do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["ARENAS", "limit_malloc_arenas"]

log = logging.getLogger("janusmail")

#: malloc arenas for the server process (see the module docstring)
ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` for the threads this process starts from now on. Returns whether
    the cap is in force (False: not glibc, or ``MALLOC_ARENA_MAX`` was set by the environment)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt as a no-op stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
        return False
    return True
