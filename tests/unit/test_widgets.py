"""Tab labels become the slugs that links carry in ?tab=."""

from __future__ import annotations

import pytest

from core.ui import widgets


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Sign-offs", "sign-offs"),
        ("People and roles", "people-and-roles"),
        ("Model card", "model-card"),
        ("Approval pack", "approval-pack"),
        ("  Over time ", "over-time"),
    ],
)
def test_slug(label: str, expected: str) -> None:
    assert widgets.slug(label) == expected
