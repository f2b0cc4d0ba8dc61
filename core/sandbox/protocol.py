"""Messages between the server and a sandbox worker: length-prefixed frames on a pipe.

A message is one JSON header frame followed by ``header["blobs"]`` binary frames. Tables go
in as Arrow IPC streams; arrays come back as raw little-endian numbers of a fixed set of
element types, or as JSON lists of plain labels. Nothing is ever pickled.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 1024 * 1024 * 1024
MAX_BLOBS = 16
MAX_LABEL_CHARS = 200
_LENGTH = struct.Struct(">Q")

# element types an array may come back as, by name: nothing with objects or pointers
NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    "f8": np.dtype("<f8"),
    "f4": np.dtype("<f4"),
    "i8": np.dtype("<i8"),
    "i4": np.dtype("<i4"),
    "u1": np.dtype("u1"),
    "b1": np.dtype("?"),
}


class ProtocolError(Exception):
    """The other side sent something outside the agreed schema (or hung up)."""


@dataclass
class Message:
    header: dict[str, Any]
    blobs: list[bytes] = field(default_factory=list)


def write_message(stream: BinaryIO, header: dict[str, Any], blobs: list[bytes] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps({**header, "blobs": len(blobs)}, allow_nan=True).encode()
    parts = [_LENGTH.pack(len(payload)), payload]
    for blob in blobs:
        parts += [_LENGTH.pack(len(blob)), blob]
    for part in parts:
        stream.write(part)
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(min(remaining, 16 * 1024 * 1024))
        if not chunk:
            raise ProtocolError("the other side closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: BinaryIO, cap: int) -> bytes:
    (length,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
    if length > cap:
        raise ProtocolError(f"a frame of {length} bytes is over the {cap}-byte limit")
    return _read_exact(stream, length)


def read_message(stream: BinaryIO) -> Message:
    try:
        header = json.loads(_read_frame(stream, MAX_HEADER_BYTES))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("the header is not JSON") from exc
    if not isinstance(header, dict):
        raise ProtocolError("the header is not a JSON object")
    count = header.pop("blobs", 0)
    if not isinstance(count, int) or not 0 <= count <= MAX_BLOBS:
        raise ProtocolError("the header announces an invalid number of binary frames")
    return Message(header, [_read_frame(stream, MAX_BLOB_BYTES) for _ in range(count)])


# --- tables ---------------------------------------------------------------------------------


def table_to_bytes(frame: Any) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_from_bytes(data: bytes) -> Any:
    import pyarrow as pa

    with pa.ipc.open_stream(data) as reader:
        return reader.read_all().to_pandas(split_blocks=True)


# --- arrays ---------------------------------------------------------------------------------


def encode_array(values: Any) -> tuple[dict[str, Any], bytes | None]:
    """A description plus raw bytes for numbers; labels travel inside the description."""
    array = np.asarray(values)
    for name, dtype in NUMERIC_DTYPES.items():
        if array.dtype == dtype or (
            array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize
        ):
            data = np.ascontiguousarray(array, dtype=dtype)
            return {"dtype": name, "shape": list(array.shape)}, data.tobytes()
    if array.ndim != 1:
        raise ProtocolError("only one-dimensional label arrays can be sent")
    return {
        "dtype": "labels",
        "shape": [len(array)],
        "values": [_label(v) for v in array.tolist()],
    }, None


def _label(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value[:MAX_LABEL_CHARS] if isinstance(value, str) else value
    return str(value)[:MAX_LABEL_CHARS]


def decode_array(spec: Any, blobs: list[bytes]) -> np.ndarray:
    """The array a worker described; anything outside the schema is a ProtocolError."""
    if not isinstance(spec, dict):
        raise ProtocolError("an array description is not an object")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError("an array has an invalid shape")
    kind = spec.get("dtype")
    if kind == "labels":
        values = spec.get("values")
        if not isinstance(values, list) or len(shape) != 1 or len(values) != shape[0]:
            raise ProtocolError("a label array does not match its shape")
        if not all(_plain_label(v) for v in values):
            raise ProtocolError("a label is not a short string, number or boolean")
        return _labels_array(values)
    if kind not in NUMERIC_DTYPES:
        raise ProtocolError("an array has an element type outside the schema")
    index = spec.get("blob")
    if type(index) is not int or not 0 <= index < len(blobs):
        raise ProtocolError("an array points at a missing binary frame")
    dtype = NUMERIC_DTYPES[kind]
    data = blobs[index]
    count = int(np.prod(shape)) if shape else 1
    if len(data) != count * dtype.itemsize:
        raise ProtocolError("an array's bytes do not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _plain_label(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_LABEL_CHARS
    return value is None or isinstance(value, bool | int | float)


def _labels_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def pack_arrays(arrays: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    specs: dict[str, Any] = {}
    blobs: list[bytes] = []
    for name, values in arrays.items():
        spec, data = encode_array(values)
        if data is not None:
            spec["blob"] = len(blobs)
            blobs.append(data)
        specs[name] = spec
    return specs, blobs
