"""Reading uploaded scikit-learn model files without ever running code they carry.

Three formats are accepted, recognised by content and never by the file name:

* skops archives: the archive's own list of untrusted types is checked against the
  server's allow-list, and only the checked names are passed to ``skops.io.loads``.
* pickle streams (protocols 2 to 5) and joblib files (plain or compressed): every
  instruction is read statically first, on a symbolic stack, and any reference to a
  name outside the allow-list (or any instruction a model file never needs) refuses
  the file before anything is unpickled. Loading then goes through an unpickler whose
  ``find_class`` admits only exact allow-listed names.

The scan also refuses numpy element types whose saved state is not exactly what numpy
writes for a sound type (numpy trusts that state, and a crafted one crashes the process),
and allocating calls with huge sizes. After loading, decision trees (scikit-learn ``Tree``
and histogram-boosting predictors) must have node links that stay inside the tree and
point forward, so prediction cannot read outside its arrays or loop.

Sizes are capped before and during decompression, so archive and stream bombs are
refused before they are inflated.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import importlib
import io
import json
import lzma
import math
import pickle
import pickletools
import types
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib.numpy_pickle import NumpyUnpickler, _ensure_native_byte_order

from core.errors import InvalidInput, QuorumError, UnsafeArtifact
from core.modelfile.parameters import require_safe_parameters

FORMATS = ("skops", "joblib", "pickle")
MAX_PARAM_TEXT = 300
MAX_MODEL_BYTES = 200 * 1024 * 1024
MAX_UNPACKED_FACTOR = 5
MAX_PACK_RATIO = 200
RATIO_CHECK_FLOOR = 64 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 100_000
_CHUNK = 1024 * 1024

ALLOWED_TYPES: frozenset[str]  # computed on first use, see _allowed_types()

_ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_HOSTILE_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "builtins",
        "__builtin__",
        "importlib",
        "runpy",
        "socket",
        "shutil",
        "pty",
        "code",
        "ctypes",
        "pickle",
        "_pickle",
        "marshal",
        "types",
        "operator",
        "webbrowser",
        "commands",
        "platform",
        "pathlib",
        "io",
        "tempfile",
        "multiprocessing",
    }
)

_EXTRA_NAMES = (
    "builtins.slice",
    "builtins.set",
    "builtins.frozenset",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.complex",
    "_codecs.encode",
    "collections.OrderedDict",
    "functools.partial",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy._core.numeric._frombuffer",
    "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy.ma.core._mareconstruct",
    "numpy.ma.core.MaskedArray",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._kd_tree.KDTree64",
    "sklearn.neighbors._kd_tree.KDTree32",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._ball_tree.BallTree64",
    "sklearn.neighbors._ball_tree.BallTree32",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.metrics._dist_metrics.newObj",
    "sklearn.metrics._dist_metrics.__pyx_unpickle_DistanceMetric",
    "sklearn.utils._bunch.Bunch",
    "sklearn.utils.validation.check_array",
)


def skops_conversion_hint() -> str:
    """The one-line conversion advice shown in refusal messages."""
    return "Save the model with skops.io.dump(model, 'model.skops') and upload that."


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _module_names(module: str, keep: Callable[[str, Any], bool]) -> set[str]:
    mod = importlib.import_module(module)
    return {f"{module}.{n}" for n, v in vars(mod).items() if keep(n, v)}


@functools.cache
def _allowed_types() -> frozenset[str]:
    import scipy.sparse as sp
    from sklearn.utils import all_estimators

    names = set(_EXTRA_NAMES)
    names |= {_class_name(cls) for _, cls in all_estimators()}
    names |= {_class_name(t) for t in set(np.sctypeDict.values())}
    sparse = ("csr", "csc", "coo", "bsr", "dia", "lil", "dok")
    names |= {_class_name(getattr(sp, f"{k}_{s}")) for k in sparse for s in ("matrix", "array")}
    names |= _module_names(
        "sklearn._loss._loss", lambda n, v: n.startswith(("Cy", "__pyx_unpickle_Cy"))
    )
    names |= _module_names(
        "sklearn._loss.loss", lambda n, v: isinstance(v, type) and n.endswith(("Loss", "Error"))
    )
    names |= _module_names(
        "sklearn._loss.link", lambda n, v: isinstance(v, type) and n.endswith(("Link", "Logit"))
    )
    names.add("sklearn._loss.link.Interval")
    names |= _module_names(
        "sklearn.metrics._dist_metrics",
        lambda n, v: isinstance(v, type) and "Distance" in n and not n.startswith("PyFunc"),
    )
    return frozenset(names)


def __getattr__(name: str) -> Any:
    if name == "ALLOWED_TYPES":
        return _allowed_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class InspectedModel:
    estimator: Any
    format: str
    sha256: str
    size_bytes: int
    estimator_class: str
    library_versions: dict[str, str]
    params: dict[str, Any]
    feature_names: list[str] | None
    n_features: int | None
    task: str | None
    classes: list[Any] | None


# ---------------------------------------------------------------------------
# Messages


def _refused(problem: str, *, details: list[str] | None = None) -> UnsafeArtifact:
    return UnsafeArtifact(
        f"{problem}; it was refused and not stored. {skops_conversion_hint()}", details=details
    )


def _unreadable(problem: str) -> InvalidInput:
    return InvalidInput(f"{problem} {skops_conversion_hint()}")


def _forbidden_names_error(names: list[str]) -> UnsafeArtifact:
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    hostile = any(n.split(".", 1)[0] in _HOSTILE_MODULES for n in names)
    why = (
        "which a model file never needs"
        if hostile
        else "which is not on this server's list of allowed scikit-learn, numpy and scipy types"
    )
    return _refused(f"The file asks to import {listed}, {why}", details=sorted(names))


# ---------------------------------------------------------------------------
# Sniffing and decompression

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_COMPRESSED_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
)


def _compression_of(data: bytes) -> str | None:
    for magic, name in _COMPRESSED_MAGICS:
        if data.startswith(magic):
            return name
    if len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        return "zlib"
    return None


def _pickle_protocol(data: bytes) -> int | None:
    if len(data) >= 2 and data[0] == 0x80:
        return data[1]
    return None


def sniff_format(data: bytes) -> str:
    """Return "skops", "joblib" or "pickle" from the bytes themselves."""
    if not data:
        raise InvalidInput(f"The model file is empty (0 bytes). {skops_conversion_hint()}")
    if data.startswith(_ZIP_MAGICS):
        return "skops"
    if _compression_of(data) is not None:
        return "joblib"
    if data.startswith(b"\x04\x22\x4d\x18"):
        raise _unreadable(
            "The file is an LZ4-compressed joblib file, which this server does not read. "
            "Re-save it with joblib.dump(model, path, compress=3), or better:"
        )
    if data.startswith(b"ZF"):
        raise _unreadable("The file is a joblib file from before joblib 0.10, which is not read.")
    protocol = _pickle_protocol(data)
    if protocol is not None:
        if not 2 <= protocol <= 5:
            raise _unreadable(
                f"The file looks like a pickle with protocol {protocol}; only protocols 2 to 5 "
                "are read."
            )
        return "joblib" if _ARRAY_WRAPPER.rsplit(".", 1)[1].encode() in data else "pickle"
    raise _unreadable(
        "The file is not a model file this server can read: it is neither a skops archive, "
        "a pickle (protocol 2 to 5) nor a joblib file."
    )


def _unpacked_cap(max_bytes: int) -> int:
    return max_bytes * MAX_UNPACKED_FACTOR


def _check_unpacked(total: int, packed: int, cap: int, kind: str) -> None:
    too_big = total > cap
    too_dense = total > RATIO_CHECK_FLOOR and total > MAX_PACK_RATIO * max(packed, 1)
    if too_big or too_dense:
        raise _refused(
            f"The {kind} expands to more than {_human(min(total, cap + 1))} from "
            f"{_human(packed)} (a decompression bomb)"
        )


def _human(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


def _inflate_zlib(data: bytes, wbits: int, cap: int, kind: str) -> bytes:
    dec = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    while not dec.eof:
        piece = dec.decompress(pending, _CHUNK)
        progressed = bool(piece) or len(dec.unconsumed_tail) != len(pending)
        pending = dec.unconsumed_tail
        out += piece
        _check_unpacked(len(out), len(data), cap, kind)
        if not progressed:
            break
    if not dec.eof:
        raise _unreadable(f"The {kind} is truncated: its compressed stream ends early.")
    return bytes(out)


def _inflate_stream(data: bytes, dec: Any, cap: int, kind: str) -> bytes:
    out = bytearray()
    piece = dec.decompress(data, _CHUNK)
    while True:
        out += piece
        _check_unpacked(len(out), len(data), cap, kind)
        if dec.eof or dec.needs_input:
            break
        piece = dec.decompress(b"", _CHUNK)
    if not dec.eof:
        raise _unreadable(f"The {kind} is truncated: its compressed stream ends early.")
    return bytes(out)


def _decompress(data: bytes, method: str, cap: int) -> bytes:
    kind = f"{method}-compressed joblib file"
    try:
        if method == "zlib":
            return _inflate_zlib(data, 15, cap, kind)
        if method == "gzip":
            return _inflate_zlib(data, 31, cap, kind)
        if method == "bz2":
            return _inflate_stream(data, bz2.BZ2Decompressor(), cap, kind)
        fmt = lzma.FORMAT_XZ if method == "xz" else lzma.FORMAT_ALONE
        return _inflate_stream(data, lzma.LZMADecompressor(format=fmt), cap, kind)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise _unreadable(f"The {kind} is damaged and cannot be decompressed ({exc}).") from exc


# ---------------------------------------------------------------------------
# Static pickle scan


class _Mark:
    pass


_MARK = _Mark()


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass(eq=False)
class _Obj:
    factory: _Global
    args: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class _Dict:
    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False)
class _Opaque:
    """A value the scan does not need to follow (an array read from raw bytes, a set...)."""


_LITERAL_OPS = frozenset(
    {
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "FLOAT",
        "BINFLOAT",
    }
)
_CONSTANT_OPS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY_OPS = frozenset({"EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_IGNORED_OPS = frozenset({"PROTO", "FRAME"})


class _ScanError(Exception):
    """The stream cannot be proven safe; `unsafe` says whether it is hostile or just broken."""

    def __init__(self, message: str, *, unsafe: bool = False) -> None:
        super().__init__(message)
        self.unsafe = unsafe


def _canonical(module: str, name: str) -> str:
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


@dataclass
class _ScanResult:
    names: set[str] = field(default_factory=set)
    has_arrays: bool = False
    file_sklearn_version: str | None = None


class _PickleScan:
    """Walks a pickle stream on a symbolic stack without creating any object.

    In joblib mode a BUILD on a NumpyArrayWrapper is followed by raw array bytes (or a
    nested pickle for object arrays), exactly as ``joblib.numpy_pickle`` reads them; the
    scan computes their length from the wrapper's recorded shape and dtype and skips them.
    """

    def __init__(self, stream: io.BytesIO, result: _ScanResult, *, joblib_mode: bool) -> None:
        self.stream = stream
        self.result = result
        self.joblib_mode = joblib_mode
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.frame_end: int | None = None
        self.frozen: dict[int, Any] = {}

    def run(self) -> Any:
        while True:
            restart = False
            for op, arg, pos in self._ops():
                if op.name == "STOP":
                    if len(self.stack) != 1:
                        raise _ScanError("the pickle stream ends with a malformed stack")
                    return self.stack[0]
                if self._step(op.name, arg, pos):
                    restart = True
                    break
            if not restart:
                raise _ScanError("the pickle stream ends before its STOP instruction")

    def _ops(self) -> Iterator[tuple[Any, Any, Any]]:
        try:
            yield from pickletools.genops(self.stream)
        except ValueError as exc:
            raise _ScanError(f"the pickle stream is truncated or damaged ({exc})") from exc

    def _pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _ScanError("the pickle stream pops from an empty stack")
        return self.stack.pop()

    def _pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise _ScanError("the pickle stream has no matching MARK")

    def _top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise _ScanError("the pickle stream reads an empty stack")
        return self.stack[-1]

    def _mutable_top(self) -> Any:
        target = self._top()
        if id(target) in self.frozen:
            raise _ScanError("changes an array element type after it was built", unsafe=True)
        return target

    def _freeze(self, value: Any, depth: int = 0) -> None:
        if depth > 20 or not isinstance(value, list | tuple | _Dict):
            return
        self.frozen[id(value)] = value
        children = value.items if isinstance(value, _Dict) else value
        for child in children:
            self._freeze(child, depth + 1)

    def _global(self, module: Any, name: Any) -> _Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _ScanError("imports a name that cannot be resolved before loading", unsafe=True)
        full = _canonical(module, name)
        self.result.names.add(full)
        return _Global(full)

    def _callable(self, value: Any) -> _Global:
        if not isinstance(value, _Global):
            raise _ScanError("calls something that is not a named, allowed type", unsafe=True)
        return value

    def _step(self, name: str, arg: Any, pos: int) -> bool:
        stack = self.stack
        if name in _LITERAL_OPS:
            stack.append(arg)
        elif name in _CONSTANT_OPS:
            stack.append(_CONSTANT_OPS[name])
        elif name in _EMPTY_OPS:
            stack.append(
                {"EMPTY_LIST": list, "EMPTY_DICT": _Dict, "EMPTY_TUPLE": tuple}.get(name, _Opaque)()
            )
        elif name == "FRAME":
            self.frame_end = pos + 9 + int(arg)
        elif name in _IGNORED_OPS:
            pass
        elif name == "MARK":
            stack.append(_MARK)
        elif name in _PUT_OPS:
            self.memo[int(arg)] = self._top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self._top()
        elif name in _GET_OPS:
            if int(arg) not in self.memo:
                raise _ScanError("the pickle stream refers to a memo entry it never stored")
            stack.append(self.memo[int(arg)])
        else:
            return self._step_structure(name, arg, pos)
        return False

    def _step_structure(self, name: str, arg: Any, pos: int) -> bool:
        stack = self.stack
        if name == "TUPLE":
            stack.append(tuple(self._pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self._pop() for _ in range(n)][::-1]
            stack.append(tuple(items))
        elif name == "LIST":
            stack.append(self._pop_mark())
        elif name == "DICT":
            items = self._pop_mark()
            stack.append(_Dict(list(zip(items[::2], items[1::2], strict=False))))
        elif name == "FROZENSET":
            self._pop_mark()
            stack.append(_Opaque())
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            target = self._mutable_top()
            if isinstance(target, list):
                target.extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self._pop(), self._pop()][::-1] if name == "SETITEM" else self._pop_mark()
            target = self._mutable_top()
            if isinstance(target, _Dict):
                target.items.extend(zip(items[::2], items[1::2], strict=False))
        elif name == "POP":
            self._pop()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "DUP":
            stack.append(self._top())
        else:
            return self._step_objects(name, arg, pos)
        return False

    def _step_objects(self, name: str, arg: Any, pos: int) -> bool:
        stack = self.stack
        if name == "GLOBAL" or name == "INST":
            module, _, attr = str(arg).partition(" ")
            glob = self._global(module, attr)
            if name == "INST":
                stack.append(_call(glob, tuple(self._pop_mark())))
            else:
                stack.append(glob)
        elif name == "STACK_GLOBAL":
            attr = self._pop()
            stack.append(self._global(self._pop(), attr))
        elif name == "REDUCE" or name == "NEWOBJ":
            args = self._pop()
            stack.append(_call(self._callable(self._pop()), args))
        elif name == "NEWOBJ_EX":
            kwargs = self._pop()
            args = self._pop()
            if not isinstance(kwargs, _Dict) or kwargs.items:
                raise _ScanError("passes keyword arguments to a constructor", unsafe=True)
            stack.append(_call(self._callable(self._pop()), args))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise _ScanError("the pickle stream builds an object without a class")
            stack.append(_call(self._callable(items[0]), tuple(items[1:])))
        elif name == "BUILD":
            return self._build(pos)
        else:
            raise _ScanError(
                f"uses the pickle instruction {name}, which a model file never needs",
                unsafe=True,
            )
        return False

    def _build(self, pos: int) -> bool:
        state = self._pop()
        target = self._top()
        if isinstance(target, _Global):
            raise _ScanError(
                f"changes the state of the shared name {target.name} (a BUILD on a global), "
                "which would alter every model the server runs",
                unsafe=True,
            )
        if not isinstance(target, _Obj):
            return False
        if target.factory.name == "numpy.dtype":
            _set_dtype_state(target, state)
            self._freeze(state)
            return False
        for part in state if isinstance(state, tuple) and len(state) == 2 else (state,):
            if isinstance(part, _Dict):
                target.attrs.update((k, v) for k, v in part.items if isinstance(k, str))
        if self.joblib_mode and target.factory.name == _ARRAY_WRAPPER:
            self._skip_array(target, pos)
            self.stack[-1] = _Opaque()
            self.result.has_arrays = True
            return True
        return False

    def _skip_array(self, wrapper: _Obj, pos: int) -> None:
        if self.frame_end is not None and self.frame_end > pos + 1:
            raise _ScanError("starts array data inside a pickle frame", unsafe=True)
        self.frame_end = None
        dtype = _materialize_dtype(wrapper.attrs.get("dtype"))
        shape = wrapper.attrs.get("shape")
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _ScanError("an array in the file has an invalid shape")
        count = math.prod(shape)
        if dtype.hasobject:
            _PickleScan(self.stream, self.result, joblib_mode=False).run()
            return
        if count and dtype.itemsize == 0:
            raise _ScanError("an array in the file has an empty element type")
        if wrapper.attrs.get("numpy_array_alignment_bytes", None) is not None:
            padding = self.stream.read(1)
            if len(padding) != 1:
                raise _ScanError("the file is truncated: it ends inside an array")
            self._seek_forward(padding[0])
        self._seek_forward(count * dtype.itemsize)

    def _seek_forward(self, n: int) -> None:
        buffer = self.stream.getbuffer()
        size = buffer.nbytes
        buffer.release()
        target = self.stream.tell() + n
        if target > size:
            raise _ScanError("the file is truncated: it ends inside an array")
        self.stream.seek(target)


_DTYPE_LITERALS = (str, bytes, int, float, bool, type(None))
_SIZED_FACTORIES = frozenset(
    {
        "builtins.bytes",
        "builtins.bytearray",
        "numpy.ndarray",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
    }
)
_MAX_ALLOCATION_ARG = 1 << 24


def _largest_int(value: Any, depth: int = 0) -> int:
    """The largest size an allocating call could receive; unknown values count as huge."""
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, str | bytes | float | type(None) | _Global):
        return 0
    if isinstance(value, _Obj) and value.factory.name in ("numpy.dtype", "_codecs.encode"):
        return 0
    if isinstance(value, tuple | list) and depth < 4:
        return max((_largest_int(v, depth + 1) for v in value), default=0)
    return _MAX_ALLOCATION_ARG + 1


def _materialize(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        raise _ScanError("an array element type is nested too deeply")
    if isinstance(value, _DTYPE_LITERALS):
        return value
    if isinstance(value, tuple):
        return tuple(_materialize(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_materialize(v, depth + 1) for v in value]
    if isinstance(value, _Dict):
        return {_materialize(k, depth + 1): _materialize(v, depth + 1) for k, v in value.items}
    if isinstance(value, _Obj):
        return _materialize_dtype(value, depth + 1)
    raise _ScanError("an array element type contains an unexpected value")


def _materialize_dtype(value: Any, depth: int = 0) -> np.dtype[Any]:
    if not isinstance(value, _Obj) or "__dtype__" not in value.attrs:
        raise _ScanError("an array in the file has no valid element type")
    dtype: np.dtype[Any] = value.attrs["__dtype__"]
    return dtype


def _call(factory: _Global, args: Any) -> _Obj:
    """Every call instruction (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST) goes through here."""
    if factory.name in _SIZED_FACTORIES and _largest_int(args) > _MAX_ALLOCATION_ARG:
        raise _ScanError(f"asks {factory.name} for a huge allocation", unsafe=True)
    if _mentions(args, _ARRAY_WRAPPER):
        raise _ScanError("passes joblib's array wrapper to a call", unsafe=True)
    if factory.name == "numpy.dtype" and not (
        isinstance(args, tuple) and len(args) == 3 and args[2] is True
    ):
        raise _ScanError("asks for a shared numpy element type instead of a copy", unsafe=True)
    return _new_object(factory, args)


def _mentions(value: Any, name: str, depth: int = 0) -> bool:
    if isinstance(value, _Global):
        return value.name == name
    if isinstance(value, tuple | list) and depth < 8:
        return any(_mentions(v, name, depth + 1) for v in value)
    if isinstance(value, _Dict) and depth < 8:
        return any(_mentions(v, name, depth + 1) for pair in value.items for v in pair)
    return False


def _new_object(factory: _Global, args: Any) -> _Obj:
    """A symbolic REDUCE/NEWOBJ result; numpy.dtype is built for real, as numpy would."""
    obj = _Obj(factory, args)
    if factory.name == "numpy.dtype":
        try:
            real = _materialize(args)
            if isinstance(real, tuple) and 1 <= len(real) <= 3:
                obj.attrs["__dtype__"] = np.dtype(real[0], bool(real[1:2] and real[1]), True)
        except Exception:  # noqa: BLE001 - an invalid dtype only means the array is refused
            obj.attrs.pop("__dtype__", None)
    return obj


def _set_dtype_state(target: _Obj, state: Any) -> None:
    """Accept a dtype's saved state only if it is exactly what numpy writes for a sound dtype.

    numpy.dtype.__setstate__ trusts its input: an inconsistent state (a field that is not a
    dtype, object fields without the object flag) crashes the process or corrupts memory.
    """
    base = target.attrs.pop("__dtype__", None)
    if base is None:
        raise _ScanError("sets the state of an element type the scan cannot rebuild", unsafe=True)
    target.attrs["__dtype__"] = _expected_dtype(base, _materialize(state))


def _inconsistent_dtype() -> _ScanError:
    return _ScanError("holds an array element type whose saved state is inconsistent", unsafe=True)


def _expected_dtype(base: np.dtype[Any], state: Any) -> np.dtype[Any]:
    if not isinstance(state, tuple) or len(state) != 8:
        raise _inconsistent_dtype()
    _, byteorder, subarray, names, fields, itemsize, _, flags = state
    try:
        if names is not None or fields is not None:
            expected = _expected_struct(names, fields, itemsize, flags)
        elif subarray is not None:
            if not (isinstance(subarray, tuple) and len(subarray) == 2):
                raise _inconsistent_dtype()
            if not isinstance(subarray[0], np.dtype):
                raise _inconsistent_dtype()
            expected = np.dtype((subarray[0], subarray[1]))
        else:
            expected = base.newbyteorder(byteorder) if byteorder in ("<", ">") else base
        canonical = expected.__reduce__()[2]
    except _ScanError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy rejects the description
        raise _inconsistent_dtype() from exc
    if type(canonical) is not tuple or canonical != state:
        raise _inconsistent_dtype()
    return expected


def _expected_struct(names: Any, fields: Any, itemsize: Any, flags: Any) -> np.dtype[Any]:
    if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        raise _inconsistent_dtype()
    if not isinstance(fields, dict) or set(fields) != set(names) or len(fields) != len(names):
        raise _inconsistent_dtype()
    entries = [fields[n] for n in names]
    for entry in entries:
        sound = isinstance(entry, tuple) and len(entry) == 2
        if not sound or not isinstance(entry[0], np.dtype) or type(entry[1]) is not int:
            raise _inconsistent_dtype()
    spec: Any = {
        "names": list(names),
        "formats": [e[0] for e in entries],
        "offsets": [e[1] for e in entries],
        "itemsize": itemsize,
    }
    return np.dtype(spec, align=isinstance(flags, int) and bool(flags & 0x80))


def _forbidden(names: set[str]) -> list[str]:
    allowed = _allowed_types()
    return sorted(n for n in names if n not in allowed and n != _ARRAY_WRAPPER)


def _scan_pickle(data: bytes) -> _ScanResult:
    result = _ScanResult()
    scanner = _PickleScan(io.BytesIO(data), result, joblib_mode=True)
    try:
        root = scanner.run()
    except _ScanError as exc:
        forbidden = _forbidden(result.names)
        if forbidden:
            raise _forbidden_names_error(forbidden) from exc
        if exc.unsafe:
            raise _refused(f"The model file {exc}") from exc
        raise _unreadable(f"The model file cannot be read: {exc}.") from exc
    except RecursionError as exc:
        raise _refused("The model file is nested too deeply to check") from exc
    except Exception as exc:  # noqa: BLE001 - whatever a damaged stream triggers
        raise _unreadable(f"The model file cannot be read ({type(exc).__name__}).") from exc
    forbidden = _forbidden(result.names)
    if forbidden:
        raise _forbidden_names_error(forbidden)
    if isinstance(root, _Obj):
        version = root.attrs.get("_sklearn_version")
        result.file_sklearn_version = version if isinstance(version, str) else None
    return result


# ---------------------------------------------------------------------------
# Restricted loading


def _restricted_find_class(module: str, name: str, allowed: frozenset[str]) -> Any:
    full = _canonical(module, name)
    if full not in allowed:
        raise _forbidden_names_error([full])
    mod_name, _, attr = full.rpartition(".")
    return getattr(importlib.import_module(mod_name), attr)


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


# ---------------------------------------------------------------------------
# Description of the loaded estimator


def _public_class_name(cls: type) -> str:
    parts = cls.__module__.split(".")
    for depth in range(1, len(parts)):
        public = ".".join(parts[:depth])
        try:
            if getattr(importlib.import_module(public), cls.__qualname__, None) is cls:
                return f"{public}.{cls.__qualname__}"
        except ImportError:
            continue
    return _class_name(cls)


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value[:MAX_PARAM_TEXT]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple) and depth < 3:
        return [_json_safe(v, depth + 1) for v in value[:100]]
    return repr(value)[:MAX_PARAM_TEXT]


def _optional(obj: Any, attr: str) -> Any:
    try:
        return getattr(obj, attr)
    except Exception:  # noqa: BLE001 - fitted-attribute properties raise many kinds
        return None


def _feature_names(estimator: Any) -> list[str] | None:
    names = _optional(estimator, "feature_names_in_")
    if names is None and hasattr(estimator, "steps") and estimator.steps:
        names = _optional(estimator.steps[0][1], "feature_names_in_")
    return [str(n) for n in names] if names is not None else None


def _task(estimator: Any, classes: list[Any] | None) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        if classes is None:
            return None
        return "binary_classification" if len(classes) == 2 else "multiclass_classification"
    return "regression" if is_regressor(estimator) else None


def _describe(estimator: Any, data: bytes, fmt: str, file_version: str | None) -> InspectedModel:
    import scipy
    import sklearn

    versions = {"sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__}
    if file_version:
        versions["sklearn_file"] = file_version
    raw_classes = _optional(estimator, "classes_")
    classes = None
    if raw_classes is not None:
        try:
            classes = [_json_safe(c) for c in np.asarray(raw_classes).tolist()]
        except (TypeError, ValueError):
            classes = None
    n_features = _optional(estimator, "n_features_in_")
    try:
        raw_params = estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - a broken estimator state
        raw_params = {}
    return InspectedModel(
        estimator=estimator,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        estimator_class=_public_class_name(type(estimator)),
        library_versions=versions,
        params={str(k): _json_safe(v) for k, v in raw_params.items()},
        feature_names=_feature_names(estimator),
        n_features=int(n_features) if isinstance(n_features, int | np.integer) else None,
        task=_task(estimator, classes),
        classes=classes,
    )


def _nested_objects(root: Any, limit: int = 100_000) -> Iterator[Any]:
    """Every object reachable from `root` through attributes, containers and object arrays."""
    seen: set[int] = set()
    pending = [root]
    while pending and len(seen) < limit:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            pending.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                pending.extend(obj.ravel().tolist())
        elif hasattr(obj, "__dict__"):
            pending.extend(vars(obj).values())


def _links_are_sound(left: Any, right: Any, is_leaf: Any, size: int) -> bool:
    index = np.arange(size)
    inner = ~np.asarray(is_leaf, dtype=bool)
    left, right = np.asarray(left)[inner], np.asarray(right)[inner]
    parents = index[inner]
    return bool(((left > parents) & (left < size) & (right > parents) & (right < size)).all())


def _tree_is_sound(tree: Any) -> bool:
    size = int(tree.node_count)
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    leaf = left == -1
    if len(left) != size or tree.value.shape[0] != size or not (leaf == (right == -1)).all():
        return False
    inner_features = feature[~leaf]
    in_range = (inner_features >= 0) & (inner_features < int(tree.n_features))
    return _links_are_sound(left, right, leaf, size) and bool(in_range.all())


def _predictor_is_sound(predictor: Any, n_features: int | None) -> bool:
    nodes = predictor.nodes
    size = len(nodes)
    inner = ~nodes["is_leaf"].astype(bool)
    if not _links_are_sound(nodes["left"], nodes["right"], nodes["is_leaf"], size):
        return False
    features = nodes["feature_idx"][inner]
    if n_features is not None and not ((features >= 0) & (features < n_features)).all():
        return False
    categorical = inner & nodes["is_categorical"].astype(bool)
    bitsets = nodes["bitset_idx"][categorical]
    return bool((bitsets < len(predictor.raw_left_cat_bitsets)).all()) and bool(
        (bitsets < len(predictor.binned_left_cat_bitsets)).all()
    )


def _require_sound_trees(estimator: Any) -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    n_features: int | None = None
    for obj in _nested_objects(estimator):
        if hasattr(obj, "_predictors") and isinstance(getattr(obj, "n_features_in_", None), int):
            n_features = obj.n_features_in_
        try:
            sound = True
            if isinstance(obj, Tree):
                sound = _tree_is_sound(obj)
            elif isinstance(obj, TreePredictor):
                sound = _predictor_is_sound(obj, n_features)
        except Exception:  # noqa: BLE001 - a tree whose arrays cannot be read is not sound
            sound = False
        if not sound:
            raise _refused(
                "The file holds a decision tree whose nodes point outside the tree or back up "
                "it, which a saved model never does"
            )


def _require_estimator(obj: Any) -> None:
    from sklearn.base import BaseEstimator

    if isinstance(obj, BaseEstimator) and callable(getattr(obj, "fit", None)):
        try:
            obj.get_params(deep=True)
        except Exception as exc:  # noqa: BLE001 - a damaged saved state fails in many ways
            raise InvalidInput(
                f"The file holds a {type(obj).__name__} whose saved state is incomplete or "
                f"damaged ({type(exc).__name__}). Save the fitted model again and "
                "upload the new file."
            ) from exc
        return
    raise InvalidInput(
        f"The file holds a {type(obj).__name__}, not a scikit-learn estimator; upload a fitted "
        f"model (for example a Pipeline or a classifier). {skops_conversion_hint()}"
    )


# ---------------------------------------------------------------------------
# Public entry points


def _require_format(fmt: str, formats: tuple[str, ...]) -> None:
    if fmt in formats:
        return
    accepted = " or ".join(formats)
    raise UnsafeArtifact(
        f"The file is a {fmt} file, and this server accepts only {accepted} model files "
        f"(QUORUM_MODEL_FORMATS); it was refused and not stored. {skops_conversion_hint()}"
    )


def _load(
    data: bytes,
    max_bytes: int,
    formats: tuple[str, ...] = FORMATS,
    allowed_patterns: frozenset[str] = frozenset(),
) -> tuple[Any, str, str | None]:
    if len(data) > max_bytes:
        raise InvalidInput(
            f"The model file is {len(data) / 1e6:.1f} MB, above the {max_bytes / 1e6:.0f} MB "
            "limit. Remove training data kept on the model, or ask an administrator to raise "
            "the limit."
        )
    fmt = sniff_format(data)
    if fmt == "skops":
        _require_format(fmt, formats)
        obj, version = _load_skops(data, max_bytes)
    else:
        _require_format("joblib" if _compression_of(data) else fmt, formats)
        obj, fmt, version = _load_pickle_family(data, max_bytes)
        _require_format(fmt, formats)
    _require_estimator(obj)
    _require_sound_trees(obj)
    require_safe_parameters(obj, allowed_patterns)
    return obj, fmt, version


def _name_mismatch(data: bytes, filename: str) -> list[str]:
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    kind = "a pickle stream" if data[:1] == b"\x80" else ""
    kind = kind or ("compressed data" if _compression_of(data) else "")
    if suffix == "skops" and kind:
        return [f"the file is named .skops but its content is {kind}"]
    return []


def load_model_bytes(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> Any:
    """Load an uploaded model with the same checks as inspect_model_bytes; return the estimator."""
    return _load(data, max_bytes)[0]


def inspect_model_bytes(
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int = MAX_MODEL_BYTES,
    formats: tuple[str, ...] = FORMATS,
    allowed_patterns: frozenset[str] = frozenset(),
) -> InspectedModel:
    """Check, load and describe an uploaded model file; raise a QuorumError on refusal.
    Only the sandbox worker calls this on an upload (core.sandbox.worker)."""
    try:
        estimator, fmt, version = _load(data, max_bytes, formats, allowed_patterns)
    except QuorumError as exc:
        if filename:
            exc.details = [f"file: {filename}", *_name_mismatch(data, filename), *exc.details]
        raise
    try:
        return _describe(estimator, data, fmt, version)
    except Exception as exc:  # noqa: BLE001 - a damaged saved state fails in many ways
        raise InvalidInput(
            f"The file holds a {type(estimator).__name__} whose saved state is incomplete or "
            f"damaged ({type(exc).__name__}). Save the fitted model again and upload "
            "the new file.",
            details=[f"file: {filename}"] if filename else None,
        ) from exc


def summary_json(inspected: InspectedModel) -> dict[str, Any]:
    """The description the sandbox worker sends back: plain JSON, no objects."""
    return {
        "format": inspected.format,
        "estimator_class": inspected.estimator_class,
        "library_versions": inspected.library_versions,
        "params": inspected.params,
        "feature_names": inspected.feature_names,
        "n_features": inspected.n_features,
        "task": inspected.task,
        "classes": inspected.classes,
    }


def warm_up() -> None:
    """Import everything a load needs (the allow-list imports every estimator module)."""
    _allowed_types()
    import skops.io  # noqa: F401
    from sklearn.feature_extraction.text import _VectorizerMixin  # noqa: F401
