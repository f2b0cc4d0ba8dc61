"""Recognising a model file by its bytes, and decompressing it with caps against bombs."""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any

from core.errors import InvalidInput
from core.modelfile.allowlist import (
    _ARRAY_WRAPPER,
    _CHUNK,
    MAX_PACK_RATIO,
    MAX_UNPACKED_FACTOR,
    RATIO_CHECK_FLOOR,
    _refused,
    _unreadable,
    skops_conversion_hint,
)

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
