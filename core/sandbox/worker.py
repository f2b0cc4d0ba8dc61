"""The sandbox worker: started by core.sandbox.client, never by hand.

It isolates itself (core.sandbox.isolation), imports the libraries, says it is ready, then
serves one artifact: ``load`` once, then any number of ``predict`` and ``fit`` requests.
Errors go back as a step name and an exception type, never as the exception's text,
because text produced inside a model can carry file contents or secrets.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, BinaryIO

from core import modelfile
from core.sandbox import protocol
from core.sandbox.isolation import IsolationFailed, isolate
from core.sandbox.limits import Limits


class _Failure(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(step)
        self.step = step
        self.kind = type(error).__name__[:60]


class Worker:
    def __init__(self) -> None:
        self.estimator: Any = None

    def handle(self, message: protocol.Message) -> tuple[dict[str, Any], list[bytes]]:
        op = message.header.get("op")
        if op == "load":
            return self.load(message), []
        if self.estimator is None:
            raise _Failure("load", RuntimeError())
        if op == "predict":
            return self.predict(message)
        if op == "fit":
            return self.fit(message)
        raise _Failure("request", ValueError())

    def load(self, message: protocol.Message) -> dict[str, Any]:
        if self.estimator is not None:
            raise _Failure("load", RuntimeError())
        options = message.header
        inspected = modelfile.inspect_model_bytes(
            message.blobs[0],
            filename=str(options.get("filename", ""))[:255],
            max_bytes=int(options["max_bytes"]),
            formats=tuple(options["formats"]),
            allowed_patterns=frozenset(options.get("allowed_patterns", [])),
        )
        self.estimator = inspected.estimator
        return {"ok": True, "summary": modelfile.summary_json(inspected)}

    def _frame(self, message: protocol.Message) -> Any:
        try:
            return protocol.table_from_bytes(message.blobs[0])
        except Exception as exc:  # noqa: BLE001 - any damaged table
            raise _Failure("read the table", exc) from None

    def predict(self, message: protocol.Message) -> tuple[dict[str, Any], list[bytes]]:
        import numpy as np

        frame = self._frame(message)
        x = frame.to_numpy() if message.header.get("as_array") else frame
        arrays: dict[str, Any] = {}
        try:
            arrays["prediction"] = np.asarray(self.estimator.predict(x))
        except Exception as exc:  # noqa: BLE001 - whatever the model raises
            raise _Failure("predict", exc) from None
        notes = []
        if message.header.get("proba") and hasattr(self.estimator, "predict_proba"):
            try:
                arrays["proba"] = np.asarray(self.estimator.predict_proba(x), dtype=float)
            except Exception as exc:  # noqa: BLE001 - probabilities are optional
                notes.append(f"predict_proba failed ({type(exc).__name__[:60]})")
        specs, blobs = protocol.pack_arrays(arrays)
        return {"ok": True, "arrays": specs, "notes": notes}, blobs

    def fit(self, message: protocol.Message) -> tuple[dict[str, Any], list[bytes]]:
        import skops.io as sio
        from sklearn.base import clone

        frame = self._frame(message)
        features = [str(f) for f in message.header["features"]]
        target = str(message.header["target"])
        try:
            fitted = clone(self.estimator).fit(frame[features], frame[target])
        except Exception as exc:  # noqa: BLE001 - whatever the model raises
            raise _Failure("fit", exc) from None
        try:
            data = sio.dumps(fitted)
        except Exception as exc:  # noqa: BLE001 - an estimator skops cannot save
            raise _Failure("save the refitted model", exc) from None
        return {"ok": True}, [data]


def _error_reply(exc: BaseException) -> dict[str, Any]:
    from core.errors import QuorumError

    if isinstance(exc, _Failure):
        return {"ok": False, "failure": {"step": exc.step, "kind": exc.kind}}
    if isinstance(exc, QuorumError):
        return {
            "ok": False,
            "refusal": {
                "code": exc.code,
                "message": exc.user_message,
                "details": [str(d) for d in exc.details[:20]],
            },
        }
    if isinstance(exc, MemoryError):
        return {"ok": False, "failure": {"step": "memory", "kind": "MemoryError"}}
    return {"ok": False, "failure": {"step": "request", "kind": type(exc).__name__[:60]}}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def warm_up() -> None:
    """Import, before privileges are dropped, everything a load, a prediction or a refit
    may need: the unprivileged worker may not be able to read the Python installation."""
    import importlib

    for name in _MODULES:
        importlib.import_module(name)
    modelfile.warm_up()
    _exercise()


_MODULES = (
    "traceback",
    "_compat_pickle",
    "pickletools",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "bz2",
    "lzma",
    "zlib",
    "gzip",
    "zipfile",
    "numpy",
    "scipy.sparse",
    "scipy.special",
    "scipy.stats",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.sparse.linalg",
    "scipy.sparse.csgraph",
    "scipy.spatial",
    "scipy.interpolate",
    "pandas",
    "pyarrow",
    "pyarrow.pandas_compat",
    "pyarrow.ipc",
    "joblib",
    "threadpoolctl",
    "sklearn",
    "skops.io",
)


def _saved(model: Any) -> list[bytes]:
    import io
    import pickle

    import joblib
    import skops.io as sio

    saved = [sio.dumps(model), pickle.dumps(model, protocol=5)]
    for compress in (0, 3, ("xz", 1), ("bz2", 1)):
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=compress)
        saved.append(buffer.getvalue())
    return saved


def _exercise() -> None:
    """Run the common code paths once so their lazy imports happen now (nothing threaded:
    the template forks workers afterwards)."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    frame = pd.DataFrame({"x": np.arange(40.0), "c": ["a", "b"] * 20})
    target = np.arange(40) % 2
    encode = ColumnTransformer([("n", StandardScaler(), ["x"]), ("c", OneHotEncoder(), ["c"])])
    tree = make_pipeline(encode, DecisionTreeClassifier(max_depth=2)).fit(frame, target)
    modelfile.inspect_model_bytes(_saved(tree)[0]).estimator.predict(frame)
    linear = make_pipeline(encode, LogisticRegression()).fit(frame, target)
    for data in _saved(linear):
        modelfile.inspect_model_bytes(data).estimator.predict(frame)


def _pipes() -> tuple[BinaryIO, BinaryIO]:
    """The protocol's own descriptors; 0 and 1 then point at /dev/null so model output
    (a verbose estimator printing) cannot corrupt the frames."""
    reader = os.fdopen(os.dup(0), "rb")
    writer = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return reader, writer


def serve(reader: BinaryIO, writer: BinaryIO) -> None:
    worker = Worker()
    while True:
        try:
            message = protocol.read_message(reader)
        except protocol.ProtocolError:
            return
        if message.header.get("op") == "close":
            return
        try:
            reply, blobs = worker.handle(message)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a reply
            reply, blobs = _error_reply(exc), []
        reply["cpu_seconds"] = _cpu_seconds()
        protocol.write_message(writer, reply, blobs)


def run_isolated(limits: Limits) -> None:
    """Inside a freshly forked worker: shut in, say ready, serve one artifact."""
    reader, writer = _pipes()
    try:
        isolate(limits)
    except (IsolationFailed, OSError) as exc:
        protocol.write_message(writer, {"ready": False, "reason": str(exc)[:300]})
        return
    protocol.write_message(writer, {"ready": True, "uid": os.getuid()})
    serve(reader, writer)
