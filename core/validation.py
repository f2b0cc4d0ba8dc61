"""Checks on free-text form fields shared by every service."""

from __future__ import annotations

import re
import unicodedata

from core.errors import InvalidInput

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,78}[a-z0-9]$")
EMAIL_PATTERN = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,185}\.[a-z]{2,24}$", re.IGNORECASE)


def slug_name(value: str, what: str) -> str:
    """Identifiers such as model and team names: lowercase letters, digits, '.', '_' and '-'."""
    name = (value or "").strip()
    if not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidInput(
            f"The {what} {_show(name)} is not allowed. Use 3 to 80 lowercase letters, digits, "
            "'.', '_' or '-', starting and ending with a letter or digit (for example "
            "'credit-default-scorer')."
        )
    return name


def plain_text(value: str | None, what: str, *, max_length: int, required: bool = False) -> str:
    """Free text: control characters refused, surrounding space trimmed, length capped."""
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"The {what} is required. Fill it in and try again.")
    if len(text) > max_length:
        raise InvalidInput(
            f"The {what} is {len(text)} characters long; the limit is {max_length}. Shorten it."
        )
    bad = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    if bad:
        raise InvalidInput(
            f"The {what} contains control characters (such as {bad[0]!r}); remove them and try again."
        )
    return text


def display_name(value: str, what: str = "name") -> str:
    text = plain_text(value, what, max_length=120, required=True)
    if "\n" in text or "\t" in text:
        raise InvalidInput(f"The {what} must fit on one line.")
    return text


def email(value: str) -> str:
    address = (value or "").strip().lower()
    if not EMAIL_PATTERN.match(address):
        raise InvalidInput(
            f"{_show(address)} is not an email address. Use the form name@example.com."
        )
    return address


def _show(value: str) -> str:
    return repr(value[:60]) if value else "(empty)"
