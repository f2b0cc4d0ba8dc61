"""Starting, talking to and stopping worker processes (forked by the template, zygote.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from core.sandbox import protocol
from core.sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent.parent
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from core.sandbox.zygote import main; main()"
_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
UID_BASE = 200_000
UID_RANGE = 60_000
START_SECONDS = 300.0


class WorkerGone(Exception):
    """The worker died, hung past its time or broke the protocol; `timed_out` says which."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def worker_identity() -> tuple[int, int]:
    """A user and group of its own for each worker when the server is root, so no two
    workers share a process limit or can signal or trace each other."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    uid = UID_BASE + secrets.randbelow(UID_RANGE)
    return uid, uid


class Template:
    """The zygote process: imports done once, forks one worker per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._replies: Any = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-I", "-c", _BOOT, str(ROOT), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            pass_fds=(theirs.fileno(),),
            env=dict(_ENV),
            cwd="/",
            start_new_session=True,
        )
        theirs.close()
        ours.settimeout(START_SECONDS)
        self._control, self._replies = ours, ours.makefile("rb")
        ready = self._reply()
        if not ready.get("ready"):
            self.stop()
            raise WorkerGone(f"the sandbox could not start: {str(ready.get('reason'))[:200]}")
        ours.settimeout(30)

    def _reply(self) -> dict[str, Any]:
        try:
            line = self._replies.readline(4096)
            value = json.loads(line) if line else {}
        except (OSError, ValueError):
            value = {}
        return value if isinstance(value, dict) else {}

    def fork(self, limits: Limits, home: str, fds: tuple[int, int]) -> int:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            assert self._control is not None
            request = json.dumps({"limits": limits.to_json(), "home": home}).encode()
            try:
                socket.send_fds(self._control, [request], list(fds))
                pid = self._reply().get("pid")
            except OSError:
                pid = None
            if type(pid) is not int or pid <= 0:
                self.stop()
                raise WorkerGone("the sandbox template did not start a worker")
            return pid

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        if self._control is not None:
            self._control.close()
        self._process = self._control = None


TEMPLATE = Template()


class WorkerProcess:
    def __init__(self, limits: Limits) -> None:
        uid, gid = worker_identity()
        self.limits = Limits(**{**limits.to_json(), "uid": uid, "gid": gid})
        self.home = tempfile.mkdtemp(prefix="quorum-sandbox-")
        if os.geteuid() == 0:
            os.chown(self.home, uid, gid)
        os.chmod(self.home, 0o700)
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.pid = TEMPLATE.fork(self.limits, self.home, (request_read, reply_write))
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._stdin: BinaryIO = os.fdopen(request_write, "wb")
        self._stdout: BinaryIO = os.fdopen(reply_read, "rb")
        self.ready = False
        self.stopped = False
        self.cpu_seconds = 0.0
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        if self.stopped:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait_ready(self) -> None:
        if self.ready:
            return
        reply = self._exchange(None, [], max(self.limits.wall_seconds, 60.0))
        if not reply.header.get("ready"):
            self.stop()
            raise WorkerGone(
                f"the sandbox could not start: {str(reply.header.get('reason'))[:200]}"
            )
        self.ready = True

    def request(self, header: dict[str, Any], blobs: list[bytes]) -> protocol.Message:
        with self._lock:
            self._wait_ready()
            reply = self._exchange(header, blobs, self.limits.wall_seconds)
        cpu = reply.header.get("cpu_seconds")
        if isinstance(cpu, int | float):
            self.cpu_seconds = float(cpu)
        return reply

    def _exchange(
        self, header: dict[str, Any] | None, blobs: list[bytes], seconds: float
    ) -> protocol.Message:
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            self.kill()

        timer = threading.Timer(seconds, kill)
        timer.daemon = True
        timer.start()
        try:
            if header is not None:
                protocol.write_message(self._stdin, header, blobs)
            return protocol.read_message(self._stdout)
        except (protocol.ProtocolError, OSError, ValueError) as exc:
            self.kill()
            raise WorkerGone(str(exc)[:200], timed_out=fired.is_set()) from None
        finally:
            timer.cancel()

    def kill(self) -> None:
        """Kill the worker and everything it started (its session and its own user)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)
        if os.geteuid() == 0 and self.limits.uid >= UID_BASE:
            _kill_user(self.limits.uid)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.kill()
        for stream in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                stream.close()
        shutil.rmtree(self.home, ignore_errors=True)


def _kill_user(uid: int) -> None:
    """Kill every process left running as a worker's own user (children that left its group)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uids = next(
            (line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), []
        )
        if str(uid) in uids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
