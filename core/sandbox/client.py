"""The server's side of the sandbox. Every caller that touches an uploaded model file goes
through `Sandbox`: one worker per artifact, never shared between two models.

    with Sandbox.for_artifact(data, filename="model.skops") as box:
        summary = box.check()
        scored = box.predict(frame, proba=True)
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core import config
from core.errors import InvalidInput, QuorumError, SandboxFailure, UnsafeArtifact
from core.sandbox import protocol
from core.sandbox.limits import Limits
from core.sandbox.process import TEMPLATE, WorkerGone, WorkerProcess
from core.sandbox.summary import ModelSummary, summary_from_json

MAX_MESSAGE = 1000
MAX_DETAIL = 300
_REFUSALS: dict[str, type[QuorumError]] = {
    "unsafe_artifact": UnsafeArtifact,
    "invalid_input": InvalidInput,
}
_STEP_WORDS = {
    "load": "load the model",
    "predict": "compute predictions",
    "fit": "refit the model",
    "read the table": "read the data it was sent",
    "save the refitted model": "save the refitted model",
    "memory": "stay within its memory limit",
}


@dataclass(frozen=True)
class Predictions:
    prediction: np.ndarray
    proba: np.ndarray | None
    notes: list[str] = field(default_factory=list)


def limits_from_settings(settings: config.Settings | None = None) -> Limits:
    s = settings or config.get_settings()
    return Limits(
        memory_mb=s.sandbox_memory_mb,
        cpu_seconds=s.sandbox_cpu_seconds,
        wall_seconds=float(s.sandbox_timeout_seconds),
    )


class _Spares:
    """One pre-started worker per set of limits: imports done, no artifact loaded yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: WorkerProcess | None = None

    def take(self, limits: Limits) -> WorkerProcess:
        with self._lock:
            spare, self._spare = self._spare, None
            if spare is None or not spare.alive or not _same(spare.limits, limits):
                if spare is not None:
                    spare.stop()
                spare = WorkerProcess(limits)
            self._spare = WorkerProcess(limits)
            return spare

    def warm(self, limits: Limits) -> None:
        """Start the template and a spare now, so the next upload does not wait for them."""
        with self._lock:
            if self._spare is None or not self._spare.alive:
                self._spare = WorkerProcess(limits)

    def stop(self) -> None:
        with self._lock:
            if self._spare is not None:
                self._spare.stop()
                self._spare = None


def _same(a: Limits, b: Limits) -> bool:
    keep = ("memory_mb", "cpu_seconds", "file_mb", "processes", "wall_seconds")
    return all(getattr(a, k) == getattr(b, k) for k in keep)


SPARES = _Spares()


class Sandbox:
    """One uploaded artifact inside one worker. Thread-safe; close it when done."""

    def __init__(
        self,
        data: bytes,
        *,
        filename: str = "",
        allowed_patterns: Iterable[str] = (),
        settings: config.Settings | None = None,
    ) -> None:
        self.settings = settings or config.get_settings()
        self.data = data
        self.filename = filename
        self.allowed_patterns = sorted(set(allowed_patterns))
        self.sha256 = hashlib.sha256(data).hexdigest()
        self._worker: WorkerProcess | None = None
        self._summary: ModelSummary | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_artifact(cls, data: bytes, **options: Any) -> Sandbox:
        return cls(data, **options)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    @property
    def usable(self) -> bool:
        worker = self._worker
        return (
            worker is not None
            and worker.alive
            and worker.cpu_seconds < worker.limits.cpu_seconds / 2
        )

    # --- requests ---------------------------------------------------------------------------

    def check(self) -> ModelSummary:
        """Format check, scan, load and parameter checks; the summary of the model."""
        with self._lock:
            return self._check()

    def _check(self) -> ModelSummary:
        if self._summary is not None:
            return self._summary
        self._worker = SPARES.take(limits_from_settings(self.settings))
        header = {
            "op": "load",
            "filename": self.filename,
            "max_bytes": self.settings.max_upload_mb * 1024 * 1024,
            "formats": list(self.settings.model_formats),
            "allowed_patterns": self.allowed_patterns,
        }
        reply = self._call(header, [self.data], "load")
        try:
            self._summary = summary_from_json(
                reply.header.get("summary"), sha256=self.sha256, size_bytes=len(self.data)
            )
        except protocol.ProtocolError as exc:
            raise self._broken("load", exc) from None
        return self._summary

    def predict(
        self, frame: pd.DataFrame, *, as_array: bool = False, proba: bool = False
    ) -> Predictions:
        with self._lock:
            self._check()
            header = {"op": "predict", "as_array": as_array, "proba": proba}
            reply = self._call(header, [_table(frame)], "predict")
        try:
            arrays = reply.header.get("arrays")
            if not isinstance(arrays, dict) or "prediction" not in arrays:
                raise protocol.ProtocolError("the reply has no predictions")
            prediction = protocol.decode_array(arrays["prediction"], reply.blobs)
            probabilities = None
            if "proba" in arrays:
                probabilities = protocol.decode_array(arrays["proba"], reply.blobs)
            _check_shapes(prediction, probabilities, len(frame))
        except protocol.ProtocolError as exc:
            raise self._broken("predict", exc) from None
        notes = reply.header.get("notes")
        return Predictions(prediction, probabilities, _short_texts(notes))

    def fit(self, frame: pd.DataFrame, features: list[str], target: str) -> bytes:
        """A clone of the model fitted on `frame`, saved as skops bytes (an untrusted upload)."""
        with self._lock:
            self._check()
            header = {"op": "fit", "features": features, "target": target}
            reply = self._call(header, [_table(frame)], "fit")
        if len(reply.blobs) != 1:
            raise self._broken("fit", protocol.ProtocolError("no refitted model came back"))
        return reply.blobs[0]

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, header: dict[str, Any], blobs: list[bytes], step: str) -> protocol.Message:
        worker = self._worker
        if worker is None or not worker.alive:
            raise SandboxFailure(
                "The model's sandbox is no longer running (an earlier step stopped it). "
                "Start the action again.",
                step=step,
                kind="stopped",
            )
        try:
            reply = worker.request(header, blobs)
        except WorkerGone as gone:
            raise self._gone(step, gone) from None
        if reply.header.get("ok") is True:
            return reply
        raise _error_from(reply.header, step)

    def _gone(self, step: str, gone: WorkerGone) -> SandboxFailure:
        worker = self._worker
        words = _STEP_WORDS.get(step, step)
        if gone.timed_out:
            seconds = worker.limits.wall_seconds if worker else 0
            return SandboxFailure(
                f"The model did not {words} within {seconds:.0f} seconds, so its sandbox was "
                "stopped and nothing was kept. Look for parameters that make it slow (such as "
                "a regular expression), or ask an administrator to raise "
                "QUORUM_SANDBOX_TIMEOUT_SECONDS.",
                step=step,
                kind="timeout",
            )
        kind = "stopped"
        return SandboxFailure(
            f"The model's sandbox stopped while trying to {words} (it crashed or went over its "
            "memory or CPU limit), and nothing was kept. Save the model again with skops and "
            "upload that file, or ask an administrator about the sandbox limits.",
            step=step,
            kind=kind,
        )

    def _broken(self, step: str, exc: Exception) -> SandboxFailure:
        self.close()
        return SandboxFailure(
            f"The model's sandbox answered outside the agreed format while trying to "
            f"{_STEP_WORDS.get(step, step)}, so the answer was discarded and nothing was kept.",
            details=[str(exc)[:MAX_DETAIL]],
            step=step,
            kind="protocol",
        )


def _table(frame: pd.DataFrame) -> bytes:
    try:
        return protocol.table_to_bytes(frame)
    except Exception:  # noqa: BLE001 - pyarrow's many conversion errors
        raise InvalidInput(
            f"The data cannot be sent to the model: {_mixed_column(frame)}. Make every "
            "column hold one kind of value."
        ) from None


def _mixed_column(frame: pd.DataFrame) -> str:
    for name in frame.columns:
        try:
            protocol.table_to_bytes(frame[[name]])
        except Exception:  # noqa: BLE001 - the first column pyarrow refuses
            return f"column '{str(name)[:80]}' mixes numbers and text"
    return "a column holds values of mixed kinds"


def _check_shapes(prediction: np.ndarray, proba: np.ndarray | None, rows: int) -> None:
    if prediction.shape[:1] != (rows,):
        raise protocol.ProtocolError("the predictions do not have one value per row")
    if proba is not None and (proba.ndim != 2 or proba.shape[0] != rows or proba.dtype.kind != "f"):
        raise protocol.ProtocolError("the probabilities are not one row of numbers per row")


def _short_texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v[:MAX_DETAIL] for v in value[:10] if isinstance(v, str)]


def _error_from(header: dict[str, Any], step: str) -> QuorumError:
    refusal = header.get("refusal")
    if step == "load" and isinstance(refusal, dict):
        kind = _REFUSALS.get(str(refusal.get("code")), InvalidInput)
        message = str(refusal.get("message", ""))[:MAX_MESSAGE]
        details = refusal.get("details")
        return kind(message or "The model file was refused.", details=_short_texts(details))
    failure = header.get("failure")
    failure = failure if isinstance(failure, dict) else {}
    where = str(failure.get("step", step))
    where = where if where in _STEP_WORDS else step
    name = str(failure.get("kind", "Exception"))
    name = name if name.isidentifier() and len(name) <= 60 else "Exception"
    return SandboxFailure(
        f"The model failed to {_STEP_WORDS.get(where, where)} ({name} inside the model; its "
        "own message is not shown because it may quote data). Check that the columns and "
        "their types match what the model was trained on.",
        step=where,
        kind=name,
    )


class SandboxCache:
    """Workers kept loaded between calls for the same artifact (monitoring ingest scores
    chunk after chunk); the least recently used is stopped when there are too many."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._boxes: OrderedDict[str, Sandbox] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data_sha256: str, load: Any) -> Sandbox:
        """The cached sandbox for an artifact, or `load()`'s new one (called without the lock)."""
        with self._lock:
            box = self._boxes.get(data_sha256)
            if box is not None and box.usable:
                self._boxes.move_to_end(data_sha256)
                return box
        box = load()
        with self._lock:
            old = self._boxes.pop(data_sha256, None)
            self._boxes[data_sha256] = box
            evicted = [old] if old is not None and old is not box else []
            while len(self._boxes) > self.size:
                evicted.append(self._boxes.popitem(last=False)[1])
        for item in evicted:
            item.close()
        return box

    def clear(self) -> None:
        with self._lock:
            boxes, self._boxes = list(self._boxes.values()), OrderedDict()
        for box in boxes:
            box.close()


CACHE = SandboxCache()


def prestart(settings: config.Settings | None = None) -> None:
    """Warm the sandbox in the background (the register page calls it as it opens)."""
    limits = limits_from_settings(settings)
    threading.Thread(target=_warm_quietly, args=(limits,), daemon=True).start()


def _warm_quietly(limits: Limits) -> None:
    try:
        SPARES.warm(limits)
    except WorkerGone:
        return  # the next real request starts it again and reports the problem


def shutdown() -> None:
    CACHE.clear()
    SPARES.stop()
    TEMPLATE.stop()


atexit.register(shutdown)
