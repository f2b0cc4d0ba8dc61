"""Free-text and name checks shared by every service: clear messages naming the field."""

from __future__ import annotations

import pytest

from core import validation
from core.errors import InvalidInput


@pytest.mark.parametrize(
    "name", ["credit-default-scorer", "abc", "model.v2", "a_b-c.d", "x" * 80, "9lives"]
)
def test_slug_names_accepted(name: str) -> None:
    assert validation.slug_name(f"  {name} ", "model name") == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "x" * 81,
        "Credit",
        "-leading",
        "trailing-",
        "../etc/passwd",
        "a..b",
        "with space",
        "semi;colon",
        "<script>",
        "naïve",
        "tab\tname",
    ],
)
def test_slug_names_refused_with_the_field_named(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validation.slug_name(name, "team name")
    message = refused.value.user_message
    assert "team name" in message and "lowercase" in message and "for example" in message


def test_plain_text_trims_and_keeps_newlines_and_tabs() -> None:
    assert validation.plain_text("  line one\n\tline two  ", "notes", max_length=50) == (
        "line one\n\tline two"
    )
    assert validation.plain_text(None, "notes", max_length=5) == ""


def test_plain_text_keeps_html_as_text() -> None:
    hostile = "<script>alert(1)</script> & <b>bold</b>"
    assert validation.plain_text(hostile, "comment", max_length=200) == hostile


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\r", "\x07", "\x7f"])
def test_plain_text_refuses_control_characters(bad: str) -> None:
    with pytest.raises(InvalidInput, match="purpose contains control characters"):
        validation.plain_text(f"ok{bad}ok", "purpose", max_length=100)


def test_plain_text_length_limit_says_both_lengths() -> None:
    with pytest.raises(InvalidInput, match=r"purpose is 11 characters long; the limit is 10"):
        validation.plain_text("x" * 11, "purpose", max_length=10)


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_required_text_refuses_blank(blank: str | None) -> None:
    with pytest.raises(InvalidInput, match="reason is required"):
        validation.plain_text(blank, "reason", max_length=10, required=True)


def test_display_name_must_fit_on_one_line() -> None:
    assert validation.display_name(" Ada Lovelace ") == "Ada Lovelace"
    with pytest.raises(InvalidInput, match="one line"):
        validation.display_name("Ada\nLovelace")
    with pytest.raises(InvalidInput, match="token name is required"):
        validation.display_name("", "token name")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        (" bo@x.io ", "bo@x.io"),
        ("a.b+c@d.co.uk", "a.b+c@d.co.uk"),
    ],
)
def test_email_accepted_and_lowercased(raw: str, clean: str) -> None:
    assert validation.email(raw) == clean


@pytest.mark.parametrize(
    "bad", ["", "ada", "ada@", "@example.com", "a@b", "a b@example.com", "a@b@c.com", "<a>@x.com"]
)
def test_email_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="name@example.com"):
        validation.email(bad)
