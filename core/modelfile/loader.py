"""Loading: the guarded unpickler (the scan's rules enforced again on the real objects) and
skops archives checked against the same allow-list."""

from __future__ import annotations

import io
import json
import math
import pickle
import types
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
from joblib.numpy_pickle import NumpyUnpickler, _ensure_native_byte_order

from core.errors import QuorumError
from core.modelfile.allowlist import (
    _ARRAY_WRAPPER,
    MAX_ARCHIVE_MEMBERS,
    MAX_MODEL_BYTES,
    MAX_UNPACKED_FACTOR,
    _allowed_types,
    _canonical,
    _forbidden_names_error,
    _refused,
    _restricted_find_class,
    _unreadable,
)
from core.modelfile.scan import (
    _MAX_ALLOCATION_ARG,
    _SIZED_FACTORIES,
    _expected_dtype,
    _scan_pickle,
    _ScanError,
)
from core.modelfile.sniff import (
    _check_unpacked,
    _compression_of,
    _decompress,
    _pickle_protocol,
    _unpacked_cap,
)

# ---------------------------------------------------------------------------
# Restricted loading


_GLOBAL_KINDS = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


class _GuardedUnpickler(NumpyUnpickler):
    """The loader enforces the scan's rules itself, on the objects it actually builds.

    The static scan reads the stream first and refuses what it can prove unsafe; this
    unpickler then executes the same bytes and checks every call, every BUILD and every
    array read again on the real objects, so a stream that reads differently to the scan
    (a desynchronisation) is still held to the same rules: only named allow-listed
    callables are called, with bounded sizes; no BUILD or item change touches a global or
    a shared numpy element type; joblib array bytes are read only for a wrapper the file
    built directly, with a checked element type, shape and length.
    """

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, stream: io.BytesIO, allowed: frozenset[str], *, arrays: bool) -> None:
        super().__init__("", stream, ensure_native_byte_order=True)
        self._allowed = allowed | ({_ARRAY_WRAPPER} if arrays else set())
        self._arrays = arrays
        self._names: dict[int, str] = {}
        self._keep: list[Any] = []
        self._shared: set[int] = set()
        self._dtypes: set[int] = set()
        self._unbuilt_dtypes: set[int] = set()
        self._wrappers: set[int] = set()

    def find_class(self, module: str, name: str) -> Any:
        obj = _restricted_find_class(module, name, self._allowed)
        self._keep.append(obj)
        self._names[id(obj)] = _canonical(module, name)
        self._shared.add(id(obj))
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise _refused("The file asks for an external object reference")

    def _guard_call(self, func: Any, args: Any) -> str:
        name = self._names.get(id(func))
        if name is None:
            raise _refused("The model file calls something that is not a named, allowed type")
        if name in _SIZED_FACTORIES and _largest_real_int(args) > _MAX_ALLOCATION_ARG:
            raise _refused(f"The model file asks {name} for a huge allocation")
        if name == "numpy.dtype" and not (
            isinstance(args, tuple) and len(args) == 3 and args[2] is True
        ):
            raise _refused("The model file asks for a shared numpy element type instead of a copy")
        return name

    def _after_call(self, name: str) -> None:
        result = self.stack[-1]
        self._keep.append(result)
        if name == "numpy.dtype":
            self._dtypes.add(id(result))
            self._unbuilt_dtypes.add(id(result))
        elif name == _ARRAY_WRAPPER:
            self._wrappers.add(id(result))
        if isinstance(result, _GLOBAL_KINDS) or id(result) in self._shared:
            self._shared.add(id(result))

    def load_reduce(self) -> None:
        name = self._guard_call(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]
        self._after_call(name)

    def load_newobj(self) -> None:
        name = self._guard_call(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]
        self._after_call(name)

    def load_newobj_ex(self) -> None:
        if self.stack[-1]:
            raise _refused("The model file passes keyword arguments to a constructor")
        name = self._guard_call(self.stack[-3], self.stack[-2])
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]
        self._after_call(name)

    def _instantiate(self, klass: Any, args: Any) -> None:
        name = self._guard_call(klass, tuple(args))
        pickle._Unpickler._instantiate(self, klass, args)  # type: ignore[attr-defined]
        self._after_call(name)

    def _guard_target(self, target: Any) -> None:
        if id(target) in self._shared or isinstance(target, _GLOBAL_KINDS):
            raise _refused(
                "The model file changes the state of a shared name (a BUILD on a global), "
                "which would alter every model the server runs"
            )

    def load_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2]
        self._guard_target(target)
        if isinstance(target, np.dtype):
            self._build_dtype(target, state)
        elif type(target).__name__ in ("NumpyArrayWrapper", "NDArrayWrapper"):
            self._build_array(target, state)
            return
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    def load_setitem(self) -> None:
        self._guard_target(self.stack[-3])
        pickle._Unpickler.load_setitem(self)  # type: ignore[attr-defined]

    def load_append(self) -> None:
        self._guard_target(self.stack[-2])
        pickle._Unpickler.load_append(self)  # type: ignore[attr-defined]

    def load_setitems(self) -> None:
        self._guard_target(self.metastack[-1][-1] if self.metastack else None)
        pickle._Unpickler.load_setitems(self)  # type: ignore[attr-defined]

    def load_appends(self) -> None:
        self._guard_target(self.metastack[-1][-1] if self.metastack else None)
        pickle._Unpickler.load_appends(self)  # type: ignore[attr-defined]

    def load_additems(self) -> None:
        self._guard_target(self.metastack[-1][-1] if self.metastack else None)
        pickle._Unpickler.load_additems(self)  # type: ignore[attr-defined]

    def _build_dtype(self, target: np.dtype[Any], state: Any) -> None:
        if id(target) not in self._unbuilt_dtypes:
            raise _refused("The model file changes a numpy element type it did not create")
        self._unbuilt_dtypes.discard(id(target))
        try:
            _expected_dtype(target, state)
        except _ScanError as exc:
            raise _refused(f"The model file {exc}") from exc

    def _build_array(self, wrapper: Any, state: Any) -> None:
        if not self._arrays or id(wrapper) not in self._wrappers:
            raise _refused(
                "The model file reads array data through an object it did not build as a "
                "joblib array wrapper (the scan and the loader would read different bytes)"
            )
        self.stack.pop()
        self.stack[-1] = self._read_array(_wrapper_state(state, self._dtypes))

    def _read_array(self, spec: dict[str, Any]) -> Any:
        frame = self._unframer.current_frame  # type: ignore[attr-defined]
        if frame is not None and frame.tell() < len(frame.getbuffer()):
            raise _refused("The model file starts array data inside a pickle frame")
        dtype, shape = spec["dtype"], spec["shape"]
        stream = self.file_handle
        if dtype.hasobject:
            inner = _GuardedUnpickler(stream, self._allowed - {_ARRAY_WRAPPER}, arrays=False)
            array = inner.load()
            if not isinstance(array, np.ndarray) or not array.dtype.hasobject:
                raise _refused("The model file holds an object array that is not an array")
            return array
        if spec.get("numpy_array_alignment_bytes") is not None:
            padding = stream.read(1)
            stream.read(padding[0] if padding else 0)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > len(stream.getbuffer()) - stream.tell():
            raise _unreadable("The model file is truncated: it ends inside an array.")
        array = np.frombuffer(stream.read(nbytes), dtype=dtype).copy()
        if spec.get("order") == "F":
            array = array.reshape(shape[::-1]).transpose()
        else:
            array = array.reshape(shape)
        return _ensure_native_byte_order(array)

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.ADDITEMS[0]] = load_additems


_WRAPPER_KEYS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)


def _wrapper_state(state: Any, dtypes: set[int]) -> dict[str, Any]:
    """A joblib array wrapper's saved state, accepted only when it is exactly sound."""
    if not isinstance(state, dict) or not set(state) <= _WRAPPER_KEYS:
        raise _refused("The model file holds a joblib array with an unexpected description")
    dtype, shape = state.get("dtype"), state.get("shape", ())
    if not isinstance(dtype, np.dtype) or id(dtype) not in dtypes:
        raise _refused("The model file holds an array whose element type it did not build")
    sound_shape = isinstance(shape, tuple) and all(
        type(d) is int and 0 <= d <= _MAX_ALLOCATION_ARG for d in shape
    )
    if not sound_shape or state.get("order", "C") not in ("C", "F"):
        raise _refused("The model file holds an array with an invalid shape or order")
    if state.get("subclass", np.ndarray) is not np.ndarray:
        raise _refused("The model file holds an array of an unexpected kind")
    if math.prod(shape) and dtype.itemsize == 0:
        raise _refused("The model file holds an array with an empty element type")
    if math.prod(shape) * max(dtype.itemsize, 1) > MAX_MODEL_BYTES * MAX_UNPACKED_FACTOR:
        raise _refused("The model file asks for an array larger than the server allows")
    return state


def _largest_real_int(value: Any, depth: int = 0) -> int:
    """The largest size a call receives, on real loaded values; unknown values count as huge."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | np.integer):
        return abs(int(value))
    if isinstance(value, str | bytes | bytearray | float | type(None) | np.dtype | type):
        return 0
    if isinstance(value, tuple | list) and depth < 4:
        return max((_largest_real_int(v, depth + 1) for v in value), default=0)
    return _MAX_ALLOCATION_ARG + 1


def _unpickle(payload: bytes, *, has_arrays: bool) -> tuple[Any, str | None]:
    stream = io.BytesIO(payload)
    unpickler = _GuardedUnpickler(stream, _allowed_types(), arrays=has_arrays)
    return _load_catching_versions(unpickler.load)


def _load_catching_versions(load: Callable[[], Any]) -> tuple[Any, str | None]:
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            obj = load()
        except QuorumError:
            raise
        except MemoryError as exc:
            raise _refused("The model file asks for more memory than the server allows") from exc
        except RecursionError as exc:
            raise _refused("The model file is nested too deeply to load") from exc
        except Exception as exc:  # noqa: BLE001 - any failure of a damaged stream
            raise _unreadable(
                f"The model file could not be loaded ({type(exc).__name__})."
            ) from exc
    for item in caught:
        if isinstance(item.message, InconsistentVersionWarning):
            return obj, str(item.message.original_sklearn_version)
    return obj, None


def _load_pickle_family(data: bytes, max_bytes: int) -> tuple[Any, str, str | None]:
    method = _compression_of(data)
    payload = data if method is None else _decompress(data, method, _unpacked_cap(max_bytes))
    if method is not None and _pickle_protocol(payload) not in (2, 3, 4, 5):
        raise _unreadable("The compressed file does not hold a pickle stream of protocol 2 to 5.")
    scan = _scan_pickle(payload)
    obj, warned_version = _unpickle(payload, has_arrays=scan.has_arrays)
    fmt = "joblib" if method is not None or scan.has_arrays else "pickle"
    return obj, fmt, warned_version or scan.file_sklearn_version


def _check_archive(data: bytes, max_bytes: int) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on a damaged archive
        raise _unreadable(
            f"The skops archive is truncated or damaged and cannot be opened ({type(exc).__name__})."
        ) from exc
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise _refused(f"The skops archive holds {len(members)} members")
    total = sum(m.file_size for m in members)
    _check_unpacked(total, len(data), _unpacked_cap(max_bytes), "skops archive")
    if "schema.json" not in archive.namelist():
        raise _unreadable("The zip archive is not a skops file: it has no schema.json.")
    return archive


def _skops_file_version(archive: zipfile.ZipFile) -> str | None:
    try:
        schema = json.loads(archive.read("schema.json"))
        content = schema.get("content", {}).get("content", {})
        version = content.get("_sklearn_version", {})
        value = version.get("content") if isinstance(version, dict) else None
        if isinstance(version, dict) and version.get("is_json") and isinstance(value, str):
            value = json.loads(value)
    except Exception:  # noqa: BLE001 - the version is informative only
        return None
    return value if isinstance(value, str) else None


def _load_skops(data: bytes, max_bytes: int) -> tuple[Any, str | None]:
    import skops.io as sio

    archive = _check_archive(data, max_bytes)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a damaged archive
        raise _unreadable(f"The skops file could not be read ({type(exc).__name__}).") from exc
    allowed = _allowed_types()
    forbidden = sorted(t for t in untrusted if t not in allowed)
    if forbidden:
        raise _forbidden_names_error(forbidden)
    checked = [t for t in untrusted if t in allowed]
    obj, warned = _load_catching_versions(lambda: sio.loads(data, trusted=checked))
    return obj, warned or _skops_file_version(archive)
