"""The static scan: every pickle instruction read on a symbolic stack before anything is
unpickled, refusing hostile names, calls, allocations and inconsistent numpy element types."""

from __future__ import annotations

import io
import math
import pickletools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.modelfile.allowlist import (
    _ARRAY_WRAPPER,
    _allowed_types,
    _canonical,
    _forbidden_names_error,
    _refused,
    _unreadable,
)

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
