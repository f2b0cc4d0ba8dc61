"""The sandbox's template process: started once by the server with an empty environment, it
imports everything a worker needs and then only forks workers on request. Each forked worker
shuts itself in (core.sandbox.isolation) before it reads anything, so a new worker costs a
fork instead of a Python start and a minute of imports on a busy machine.

The template never touches an uploaded file or any data; it holds no secrets (it was started
with an empty environment) and runs nothing but this loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from core.sandbox.limits import Limits

MAX_REQUEST = 64 * 1024


def _fork_worker(limits: Limits, home: str, request_fd: int, reply_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(request_fd, 0)
        os.dup2(reply_fd, 1)
        os.closerange(2, 65536)
        os.open(os.devnull, os.O_WRONLY)  # descriptor 2
        os.chdir(home)
        from core.sandbox.worker import run_isolated

        run_isolated(limits)
    finally:
        os._exit(0)


def _serve(control: socket.socket) -> None:
    while True:
        message, fds, _, _ = socket.recv_fds(control, MAX_REQUEST, 2)
        if not message:
            return
        request = json.loads(message)
        pid = -1
        if len(fds) == 2:
            pid = _fork_worker(Limits.from_json(request["limits"]), request["home"], *fds)
        for fd in fds:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[-1]))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    from core.sandbox.worker import warm_up

    try:
        warm_up()
    except Exception as exc:  # noqa: BLE001 - reported to the server, which refuses to run
        control.sendall(json.dumps({"ready": False, "reason": repr(exc)[:300]}).encode() + b"\n")
        return
    control.sendall(json.dumps({"ready": True}).encode() + b"\n")
    _serve(control)
