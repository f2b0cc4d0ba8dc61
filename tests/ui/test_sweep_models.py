"""The Models page (every version's evaluation, comparison and model card) for every role,
deep-linked to every demo model and version, with every picker tried (see sweep.py)."""

from __future__ import annotations

import pytest

from core.models import Role
from tests.ui.kit import DemoStore
from tests.ui.sweep import cases, run_sweep

PAGES = ["pages/1_Models.py"]


@pytest.mark.parametrize(("page", "role"), cases(PAGES))
def test_no_crash_and_content(page: str, role: Role | None, demo_env: DemoStore) -> None:
    assert run_sweep(page, role, demo_env) > 0
