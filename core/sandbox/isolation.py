"""How a worker shuts itself in before it reads anything: no environment, no network, no
privileges, hard resource limits. Runs first thing in the worker process."""

from __future__ import annotations

import ctypes
import os
import resource

from core.sandbox.limits import Limits

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class IsolationFailed(Exception):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _leave_network() -> None:
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if _libc().unshare(flags) != 0:
        raise IsolationFailed(
            f"cannot enter an empty network namespace ({os.strerror(ctypes.get_errno())})"
        )


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def _apply_limits(limits: Limits) -> None:
    mb = 1024 * 1024
    _limit(resource.RLIMIT_AS, limits.memory_mb * mb)
    _limit(resource.RLIMIT_CPU, limits.cpu_seconds)
    _limit(resource.RLIMIT_FSIZE, limits.file_mb * mb)
    _limit(resource.RLIMIT_NPROC, limits.processes)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 256)


def _drop_privileges(limits: Limits) -> None:
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setresgid(limits.gid, limits.gid, limits.gid)
    os.setresuid(limits.uid, limits.uid, limits.uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise IsolationFailed("still running as root after dropping privileges")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise IsolationFailed("could become root again after dropping privileges")


def isolate(limits: Limits) -> None:
    """Empty environment, private empty network, limits, unprivileged user, no new privileges."""
    os.environ.clear()
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    _leave_network()
    _apply_limits(limits)
    _drop_privileges(limits)
    libc = _libc()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
