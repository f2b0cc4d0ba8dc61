import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInput
from core.tables import check_columns, iter_table_chunks, read_table, sanitize_header

GOOD_CSV = b"age,city,income\n34,Lyon,52000.5\n51,Oslo,61000\n"


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def refusal(data: bytes, filename: str = "eval.csv", **kwargs) -> str:
    with pytest.raises(InvalidInput) as caught:
        read_table(data, filename, **kwargs)
    return str(caught.value)


def test_reads_good_csv_with_types():
    frame = read_table(GOOD_CSV, "eval.csv")
    assert list(frame.columns) == ["age", "city", "income"]
    assert frame["age"].tolist() == [34, 51]
    assert pd.api.types.is_float_dtype(frame["income"])
    assert frame["city"].tolist() == ["Lyon", "Oslo"]


def test_reads_utf8_with_bom_and_accents():
    frame = read_table("\ufeffname,score\nCafé,1\n".encode(), "eval.csv")
    assert list(frame.columns) == ["name", "score"]
    assert frame["name"].iloc[0] == "Café"


def test_reads_parquet_by_content_whatever_the_extension():
    source = pd.DataFrame({"x": [1.5, 2.5], "label": ["a", "b"]}, index=[10, 20])
    frame = read_table(parquet_bytes(source), "renamed.csv")
    assert frame["x"].tolist() == [1.5, 2.5]
    assert list(frame.index) == [0, 1]


def test_parquet_with_timestamps_and_durations_is_read():
    stamps = pd.date_range("2026-01-01", periods=3, freq="h", tz="UTC")
    source = pd.DataFrame(
        {"timestamp": stamps, "took": pd.to_timedelta([1, 2, 3], unit="s"), "id": ["a", "b", "c"]}
    )
    frame = read_table(parquet_bytes(source), "predictions.parquet")
    assert frame["timestamp"].tolist() == list(stamps)
    chunks = list(iter_table_chunks(io.BytesIO(parquet_bytes(source)), "p.parquet", 2))
    assert sum(len(c) for c in chunks) == 3
    assert "=1+1" in refusal(parquet_bytes(source.assign(id=["a", "=1+1", "c"])), "p.parquet")


def test_negative_numbers_are_not_formulas():
    frame = read_table(b"delta,note\n-3.5,ok\n+2,fine\n", "eval.csv")
    assert frame["delta"].tolist() == [-3.5, 2.0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty"),
        (b"\n\n  \n", "is empty"),
        (b"age,city\n", "header but no data rows"),
        (b"age,age,city\n1,2,x\n", "duplicate column names: 'age'"),
        (b"age, age ,city\n1,2,x\n", "duplicate column names: 'age'"),
        (b"age,income\n1,2\n3,inf\n", "column 'income' has infinite values (row 2)"),
        (b"age,income\n1,-inf\n", "column 'income' has infinite values (row 1)"),
        (b'age,city\n1,Lyon\n2,=HYPERLINK("x")\n', "column 'city'"),
        (b"age,city\n1,@SUM(A1)\n", "row 1"),
        (b"age,city\n1,+cmd|' /C calc'!A0\n", "spreadsheet formula"),
        (b"age,city\n1,-2+3+cmd\n", "spreadsheet formula"),
        (b"age,=cmd\n1,2\n", "column name '=cmd' looks like a spreadsheet formula"),
        ("age,city\n1,Zürich\n".encode("latin-1"), "not UTF-8"),
        ("age,city\n1,Zürich\n".encode("utf-16"), "not UTF-8"),
        (b"age,,city\n1,2,x\n", "column 2"),
        (b"age,city\n1,Lyon\n2,Oslo,extra\n", "Expected 2 fields in line 3"),
        (b"age,city\n1,Lyon,extra\n", "row 1 has 3 fields"),
        (b'age,city\n1,"Lyon\n', "could not be read as CSV"),
        (b"PK\x03\x04" + b"\x00" * 30, "Excel"),
        (b"\x80\x04\x95", "pickle"),
        (b"PAR1 truncated parquet", "Parquet"),
    ],
)
def test_bad_files_are_refused_with_the_problem_named(data, expected):
    message = refusal(data)
    assert expected in message
    assert "eval.csv" in message


def test_formula_message_names_column_and_row():
    message = refusal(b"age,city\n1,Lyon\n2,Oslo\n3,=1+1\n")
    assert "column 'city'" in message
    assert "row 3" in message
    assert "'=1+1'" in message


def test_bad_encoding_suggests_utf8():
    message = refusal("a,b\n1,é\n".encode("cp1252"))
    assert "UTF-8" in message and "line 2" in message


def test_too_large_is_refused_before_parsing():
    message = refusal(GOOD_CSV, max_bytes=10)
    assert "above the limit" in message


def test_real_xlsx_workbook_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    assert "Excel" in refusal(buffer.getvalue(), "book.xlsx")


def test_parquet_problems_are_refused():
    inf_frame = pd.DataFrame({"score": [1.0, np.inf]})
    assert "column 'score' has infinite values (row 2)" in refusal(parquet_bytes(inf_frame))
    empty = pd.DataFrame({"score": pd.Series([], dtype=float)})
    assert "no data rows" in refusal(parquet_bytes(empty))
    formula = pd.DataFrame({"note": ["fine", "@cmd"]})
    assert "column 'note'" in refusal(parquet_bytes(formula))
    truncated = parquet_bytes(pd.DataFrame({"a": range(100)}))[:-30]
    assert "truncated" in refusal(truncated)


def test_path_in_filename_is_not_echoed():
    message = refusal(b"", "../../etc/passwd")
    assert "'passwd'" in message
    assert "../" not in message


def test_sanitize_header_strips_control_characters():
    assert sanitize_header("  ag\x00e\u200b\t ") == "age"
    assert sanitize_header("<b>income</b>") == "<b>income</b>"
    with pytest.raises(InvalidInput, match="empty name"):
        sanitize_header("\x01\x02  ")
    with pytest.raises(InvalidInput, match="characters long"):
        sanitize_header("x" * 500)


def test_headers_are_sanitized_on_read():
    frame = read_table(b"a\x07ge,city\n1,x\n", "eval.csv")
    assert list(frame.columns) == ["age", "city"]


def test_check_columns_names_each_problem():
    frame = pd.DataFrame(
        {
            "age": ["34", "51", "abc"],
            "zone": [1.5, 2.0, 3.0],
            "debug_id": [1, 2, 3],
            "churn": [1, None, 0],
        }
    )
    expected = {"age": "numeric", "zone": "categorical", "income": "numeric"}
    with pytest.raises(InvalidInput) as caught:
        check_columns(frame, expected, target="churn")
    details = caught.value.details
    assert "column 'income' is missing" in details
    assert any("'debug_id' is not a feature" in d for d in details)
    assert "column 'age' should be numeric but has text values such as 'abc' (row 3)" in details
    assert any("'zone' should be categorical" in d and "1.5" in d for d in details)
    assert any("target column 'churn' has empty values (row 2)" in d for d in details)
    assert len(details) == 5


def test_check_columns_missing_target_and_allowed_extras():
    frame = pd.DataFrame({"age": [1, 2], "row_id": [7, 8]})
    check_columns(frame, {"age": "numeric"}, allow_extra=["row_id"])
    with pytest.raises(InvalidInput) as caught:
        check_columns(frame, {"age": "numeric"}, target="churn", allow_extra=["row_id"])
    assert caught.value.details == ["target column 'churn' is missing"]


def test_check_columns_accepts_matching_frame():
    frame = read_table(GOOD_CSV, "eval.csv")
    check_columns(frame, {"age": "numeric", "city": "categorical"}, target="income")
    integer_codes = pd.DataFrame({"grade": [1.0, 2.0, None]})
    check_columns(integer_codes, {"grade": "categorical"})


def test_iter_chunks_csv_and_parquet(tmp_path):
    rows = "\n".join(f"{i},{i * 2}" for i in range(25))
    path = tmp_path / "big.csv"
    path.write_bytes(f"a,b\n{rows}\n".encode())
    chunks = list(iter_table_chunks(path, "big.csv", chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert chunks[2].index[0] == 20
    frame = pd.DataFrame({"a": range(25), "b": [str(i) for i in range(25)]})
    parquet_chunks = list(iter_table_chunks(io.BytesIO(parquet_bytes(frame)), "p", 10))
    assert sum(len(c) for c in parquet_chunks) == 25
    assert parquet_chunks[1]["a"].iloc[0] == 10


def test_iter_chunks_reports_rows_across_chunks():
    data = b"a,b\n" + b"1,x\n" * 12 + b"2,=evil()\n"
    with pytest.raises(InvalidInput, match="row 13"):
        list(iter_table_chunks(io.BytesIO(data), "stream.csv", chunk_rows=5))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty"),
        (b"a,b\n", "no data rows"),
        ("a,b\n1,é\n".encode("latin-1"), "not UTF-8"),
        (b"a,b\n1,2\n1,2,3\n", "could not be read as CSV"),
    ],
)
def test_iter_chunks_refuses_bad_files(data, expected):
    with pytest.raises(InvalidInput, match=expected):
        list(iter_table_chunks(io.BytesIO(data), "stream.csv", chunk_rows=5))


def test_iter_chunks_refuses_duplicate_headers_and_keeps_position(tmp_path):
    with pytest.raises(InvalidInput, match="duplicate column names: 'a'"):
        list(iter_table_chunks(io.BytesIO(b"a,a\n1,2\n"), "dup.csv"))
    path = tmp_path / "dup.csv"
    path.write_bytes(b"a,a\n1,2\n")
    with pytest.raises(InvalidInput, match="duplicate column names"):
        list(iter_table_chunks(path, "dup.csv"))
    buffer = io.BytesIO(b"a,b\n1,2\n")
    assert [c["b"].tolist() for c in iter_table_chunks(buffer, "ok.csv")] == [[2]]


def test_semicolon_and_tab_separated_files_are_read_like_commas():
    expected = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]})
    for sep in (";", "\t", "|"):
        data = expected.to_csv(index=False, sep=sep).encode()
        pd.testing.assert_frame_equal(read_table(data, "eu.csv"), expected)
        chunks = list(iter_table_chunks(io.BytesIO(data), "eu.csv", chunk_rows=1))
        pd.testing.assert_frame_equal(pd.concat(chunks), expected)
    # a comma file whose text holds semicolons stays a comma file
    mixed = b"a,b\n1,x;y\n2,z\n"
    assert list(read_table(mixed, "mixed.csv")["b"]) == ["x;y", "z"]
