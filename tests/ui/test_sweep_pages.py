"""Every other page, for every role that may open it, deep-linked to every demo model where it
shows one, with every picker tried (see sweep.py)."""

from __future__ import annotations

import pytest

from core.models import Role
from tests.ui.kit import DemoStore
from tests.ui.sweep import cases, run_sweep

PAGES = [
    "app.py",
    "pages/2_Register.py",
    "pages/4_Deployments.py",
    "pages/5_Monitoring.py",
    "pages/45_Batch_scoring.py",
    "pages/7_Audit.py",
    "pages/8_Admin.py",
    "pages/9_Profile.py",
]


@pytest.mark.parametrize(("page", "role"), cases(PAGES))
def test_no_crash_and_content(page: str, role: Role | None, demo_env: DemoStore) -> None:
    assert run_sweep(page, role, demo_env) > 0
