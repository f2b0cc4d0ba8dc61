"""Read uploaded CSV and Parquet tables, refusing anything malformed with a clear reason.

Row numbers in messages count data rows from 1 (the header is not a row); for a CSV file
the matching line in a text editor or spreadsheet is one more.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InvalidInput

MAX_TABLE_BYTES: int = 500 * 1024 * 1024
MAX_HEADER_CHARS = 256
PARQUET_MAGIC = b"PAR1"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FEATURE_KINDS = ("numeric", "categorical")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"\x1f\x8b": "a gzip archive",
    b"\x80": "a Python pickle",
}
_MAX_LISTED_ROWS = 3


def read_table(data: bytes, filename: str, *, max_bytes: int = MAX_TABLE_BYTES) -> pd.DataFrame:
    """Parse an uploaded CSV or Parquet file (detected by content) into a checked DataFrame."""
    name = _display_name(filename)
    _check_size(data, name, max_bytes)
    if data[:4] == PARQUET_MAGIC:
        frame = _read_parquet_bytes(data, name)
    else:
        frame = _read_csv_bytes(data, name)
    return _checked_frame(frame, name)


def iter_table_chunks(
    path_or_buffer: str | os.PathLike[str] | IO[bytes],
    filename: str,
    chunk_rows: int = 100_000,
) -> Iterator[pd.DataFrame]:
    """Yield checked chunks of at most `chunk_rows` rows, without loading the whole file."""
    if chunk_rows < 1:
        raise InvalidInput("The chunk size must be at least one row.")
    name = _display_name(filename)
    head = _peek(path_or_buffer, 4)
    if not head:
        raise InvalidInput(f"The file '{name}' is empty. Upload a file with a header and rows.")
    chunks = (
        _parquet_chunks(path_or_buffer, name, chunk_rows)
        if head == PARQUET_MAGIC
        else _csv_chunks(path_or_buffer, name, chunk_rows)
    )
    first_row = 0
    for chunk in chunks:
        yield _checked_frame(chunk, name, first_row=first_row)
        first_row += len(chunk)
    if first_row == 0:
        raise InvalidInput(_header_only_message(name))


def check_columns(
    df: pd.DataFrame,
    expected: Mapping[str, str],
    *,
    target: str | None = None,
    allow_extra: Sequence[str] = (),
) -> None:
    """Check `df` holds exactly the expected features (name -> "numeric" | "categorical")."""
    problems = _missing_columns(df, expected, target)
    problems += _extra_columns(df, expected, target, allow_extra)
    for column, kind in expected.items():
        if column in df.columns:
            problems += _type_problems(df[column], column, kind)
    if target is not None and target in df.columns:
        problems += _target_problems(df[target], target)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise InvalidInput(
            f"The table does not match the model's features ({count}). "
            "Fix the columns listed and upload it again.",
            details=problems,
        )


def sanitize_header(name: str) -> str:
    """Strip control and invisible characters and surrounding spaces; refuse an empty name."""
    cleaned = _CONTROL_CHARS.sub("", str(name)).strip()
    if not cleaned:
        raise InvalidInput(
            f"A column has an empty name ({name!r}). Give every column a name in the header row."
        )
    if len(cleaned) > MAX_HEADER_CHARS:
        raise InvalidInput(
            f"The column name '{cleaned[:40]}...' is {len(cleaned)} characters long; "
            f"use at most {MAX_HEADER_CHARS}."
        )
    return cleaned


def _display_name(filename: str) -> str:
    base = re.split(r"[\\/]", str(filename))[-1]
    return _CONTROL_CHARS.sub("", base).strip()[:120] or "upload"


def _check_size(data: bytes, name: str, max_bytes: int) -> None:
    if not data:
        raise InvalidInput(f"The file '{name}' is empty. Upload a file with a header and rows.")
    if len(data) > max_bytes:
        raise InvalidInput(
            f"The file '{name}' is {_megabytes(len(data))}, above the limit of "
            f"{_megabytes(max_bytes)}. Upload a sample, or split the file."
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _read_parquet_bytes(data: bytes, name: str) -> pd.DataFrame:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"The file '{name}' starts like Parquet but could not be read ({exc}). "
            "It may be truncated; export it again."
        ) from exc
    return _arrow_to_pandas(table, name)


def _arrow_to_pandas(table: pa.Table, name: str) -> pd.DataFrame:
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InvalidInput(
            f"The Parquet file '{name}' has columns that cannot be read as a table ({exc})."
        ) from exc


def _read_csv_bytes(data: bytes, name: str) -> pd.DataFrame:
    _refuse_binary(data[:8], name)
    text = _decode_utf8(data, name)
    if not text.strip():
        raise InvalidInput(f"The file '{name}' is empty. Upload a file with a header and rows.")
    delimiter = sniff_delimiter(text[:1024])
    header = _raw_header(text, name, delimiter)
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=False, sep=delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(_unparseable_message(name, exc)) from exc
    frame.columns = pd.Index(header)
    return frame


def _refuse_binary(head: bytes, name: str) -> None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(
            f"The file '{name}' is UTF-16 text, not UTF-8. In Excel choose 'Save As' > "
            "'CSV UTF-8'; elsewhere save or export it with UTF-8 encoding."
        )
    for signature, kind in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise InvalidInput(
                f"The file '{name}' is {kind}, not CSV or Parquet. "
                "Save it as 'CSV UTF-8' or Parquet and upload that."
            )
    if b"\x00" in head:
        raise InvalidInput(
            f"The file '{name}' is binary, not CSV or Parquet. Save it as 'CSV UTF-8' or Parquet."
        )


def _decode_utf8(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"The file '{name}' is not UTF-8 text (byte {exc.start + 1}, line {line}, "
            f"cannot be decoded). In Excel choose 'Save As' > 'CSV UTF-8'; elsewhere "
            "save or export it with UTF-8 encoding."
        ) from exc
    if "\x00" in text:
        raise InvalidInput(
            f"The file '{name}' contains NUL bytes, so it is not a text CSV. "
            "Save it as 'CSV UTF-8' or Parquet."
        )
    return text


def sniff_delimiter(head: str) -> str:
    """',' unless the header has no comma and the first KB is clearly split by ';', tab or '|'
    (a spreadsheet saved with a European locale writes semicolons)."""
    first_line = head.splitlines()[0] if head else ""
    if "," in first_line or not first_line:
        return ","
    try:
        return csv.Sniffer().sniff(head, delimiters=";\t|").delimiter
    except csv.Error:
        return ","


def _raw_header(text: str, name: str, delimiter: str = ",") -> list[str]:
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(rows)
        first_row = next(rows, None)
    except csv.Error as exc:
        raise InvalidInput(f"The header row of '{name}' could not be read ({exc}).") from exc
    if first_row is not None and len(first_row) > len(header):
        raise InvalidInput(
            f"In '{name}', row 1 has {len(first_row)} fields but the header names only "
            f"{len(header)} columns. Add the missing column names or remove the extra fields."
        )
    return header


def _unparseable_message(name: str, exc: Exception) -> str:
    detail = str(exc).strip().replace("C error: ", "")
    return (
        f"The file '{name}' could not be read as CSV: {detail}. "
        "Check that every row has the same number of comma-separated fields as the header "
        "and that quotes are closed."
    )


def _header_only_message(name: str) -> str:
    return f"The file '{name}' has a header but no data rows. Upload a file with rows."


def _checked_frame(frame: pd.DataFrame, name: str, *, first_row: int | None = None) -> pd.DataFrame:
    frame.columns = pd.Index(_checked_headers(frame.columns, name))
    if len(frame.columns) == 0:
        raise InvalidInput(f"The file '{name}' has no columns.")
    if len(frame) == 0 and first_row is None:
        raise InvalidInput(_header_only_message(name))
    start = first_row or 0
    frame.index = pd.RangeIndex(start, start + len(frame))
    _refuse_infinite(frame, name)
    _refuse_formulas(frame, name)
    return frame


def _checked_headers(columns: pd.Index, name: str) -> list[str]:
    headers = []
    for position, raw in enumerate(columns, start=1):
        try:
            header = sanitize_header(str(raw))
        except InvalidInput as exc:
            raise InvalidInput(f"In '{name}', column {position}: {exc.user_message}") from exc
        if header.startswith(FORMULA_PREFIXES):
            raise InvalidInput(
                f"In '{name}', the column name {header!r} looks like a spreadsheet formula. "
                "Rename the column so it does not start with =, +, - or @."
            )
        headers.append(header)
    duplicates = sorted(h for h, count in Counter(headers).items() if count > 1)
    if duplicates:
        listed = ", ".join(repr(h) for h in duplicates)
        raise InvalidInput(
            f"The file '{name}' has duplicate column names: {listed}. "
            "Give every column a unique name."
        )
    return headers


def _refuse_infinite(frame: pd.DataFrame, name: str) -> None:
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
        if infinite.any():
            rows = _row_numbers(values.index[infinite])
            raise InvalidInput(
                f"In '{name}', column '{column}' has infinite values ({rows}). "
                "Replace them with real numbers or leave the cells empty."
            )


def _refuse_formulas(frame: pd.DataFrame, name: str) -> None:
    for column in frame.columns:
        values = frame[column]
        if (
            pd.api.types.is_numeric_dtype(values)
            or pd.api.types.is_bool_dtype(values)
            or pd.api.types.is_datetime64_any_dtype(values)
            or pd.api.types.is_timedelta64_dtype(values)
        ):
            continue  # Parquet keeps these types; no cell of them is text
        text = values.dropna()
        if text.dtype == object:
            text = text[text.map(lambda cell: isinstance(cell, str))].astype(str)
        suspicious = text[text.str.startswith(FORMULA_PREFIXES)]
        formulas = suspicious[pd.to_numeric(suspicious, errors="coerce").isna()]
        if not formulas.empty:
            first = formulas.iloc[0]
            raise InvalidInput(
                f"In '{name}', column '{column}' has a cell that looks like a spreadsheet "
                f"formula: {_preview(first)} ({_row_numbers(formulas.index)}). Formulas can run "
                "commands when the file is opened in a spreadsheet; remove the leading "
                "=, +, - or @ (or the whole formula) and upload again."
            )


def _row_numbers(index: pd.Index) -> str:
    numbers = [int(i) + 1 for i in index[:_MAX_LISTED_ROWS]]
    listed = ", ".join(str(n) for n in numbers)
    more = f" and {len(index) - _MAX_LISTED_ROWS} more" if len(index) > _MAX_LISTED_ROWS else ""
    return ("row " if len(numbers) == 1 and not more else "rows ") + listed + more


def _preview(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _peek(source: str | os.PathLike[str] | IO[bytes], size: int) -> bytes:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            return handle.read(size)
    position = source.tell()
    head = source.read(size)
    source.seek(position)
    return head


def _parquet_chunks(
    source: str | os.PathLike[str] | IO[bytes], name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(source)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield _arrow_to_pandas(pa.Table.from_batches([batch]), name)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(
            f"The Parquet file '{name}' could not be read ({exc}). It may be truncated; "
            "export it again."
        ) from exc


def _csv_chunks(
    source: str | os.PathLike[str] | IO[bytes], name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    _refuse_binary(_peek(source, 8), name)
    try:
        delimiter = sniff_delimiter(_peek(source, 1024).decode("utf-8-sig", errors="ignore"))
        header = _csv_stream_header(source, delimiter)
        _checked_headers(pd.Index(header), name)
        reader = pd.read_csv(source, chunksize=chunk_rows, encoding="utf-8-sig", sep=delimiter)
        with reader:
            yield from reader
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The file '{name}' is not UTF-8 text. In Excel choose 'Save As' > 'CSV UTF-8'; "
            "elsewhere save or export it with UTF-8 encoding."
        ) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(_unparseable_message(name, exc)) from exc


def _csv_stream_header(
    source: str | os.PathLike[str] | IO[bytes], delimiter: str = ","
) -> list[str]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            return _first_csv_row(handle, delimiter)
    position = source.tell()
    header = _first_csv_row(source, delimiter)
    source.seek(position)
    return header


def _first_csv_row(handle: IO[bytes], delimiter: str = ",") -> list[str]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        return next(csv.reader(text, delimiter=delimiter), [])
    finally:
        text.detach()


def _missing_columns(
    df: pd.DataFrame, expected: Mapping[str, str], target: str | None
) -> list[str]:
    problems = [f"column '{c}' is missing" for c in expected if c not in df.columns]
    if target is not None and target not in df.columns:
        problems.append(f"target column '{target}' is missing")
    return problems


def _extra_columns(
    df: pd.DataFrame, expected: Mapping[str, str], target: str | None, allow_extra: Sequence[str]
) -> list[str]:
    known = set(expected) | set(allow_extra) | ({target} if target is not None else set())
    return [
        f"column '{c}' is not a feature of the model; remove it" + _allow_hint(allow_extra)
        for c in df.columns
        if c not in known
    ]


def _allow_hint(allow_extra: Sequence[str]) -> str:
    return "" if not allow_extra else f" (allowed extra columns: {', '.join(allow_extra)})"


def _type_problems(values: pd.Series, column: str, kind: str) -> list[str]:
    if kind not in FEATURE_KINDS:
        return [f"column '{column}' has an unknown expected type {kind!r}"]
    if kind == "numeric":
        return _numeric_problems(values, column)
    return _categorical_problems(values, column)


def _numeric_problems(values: pd.Series, column: str) -> list[str]:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return []
    present = values.dropna()
    bad = present[pd.to_numeric(present, errors="coerce").isna()]
    if bad.empty:
        return []
    return [
        f"column '{column}' should be numeric but has text values such as "
        f"{_preview(bad.iloc[0])} ({_row_numbers(bad.index)})"
    ]


def _categorical_problems(values: pd.Series, column: str) -> list[str]:
    if not pd.api.types.is_float_dtype(values):
        return []
    present = values.dropna()
    fractional = present[present != np.floor(present)]
    if fractional.empty:
        return []
    return [
        f"column '{column}' should be categorical but has decimal numbers such as "
        f"{float(fractional.iloc[0]):g} ({_row_numbers(fractional.index)})"
    ]


def _target_problems(values: pd.Series, target: str) -> list[str]:
    missing = values[values.isna()]
    if missing.empty:
        return []
    return [
        f"target column '{target}' has empty values ({_row_numbers(missing.index)}); "
        "every evaluation row needs a known outcome"
    ]


def ignored_note(columns: set[str], limit: int = 5) -> str:
    """The note for columns a file holds that the model does not use (they are not stored)."""
    listed = ", ".join(f"'{c}'" for c in sorted(columns)[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return f"Ignored column(s) the model does not use: {listed}{more}."
