"""The pages of the app and who sees them; one table drives the sidebar and the gates."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import Permission, Principal


@dataclass(frozen=True)
class PageSpec:
    path: str
    label: str
    icon: str
    permission: Permission | None = None  # None: every signed-in person


PAGES: tuple[PageSpec, ...] = (
    PageSpec("app.py", "Home", ":material/home:"),
    PageSpec("pages/1_Models.py", "Models", ":material/model_training:"),
    PageSpec("pages/5_Monitoring.py", "Monitoring", ":material/monitoring:"),
    PageSpec(
        "pages/45_Batch_scoring.py",
        "Batch scoring",
        ":material/batch_prediction:",
        Permission.SCORE,
    ),
    PageSpec(
        "pages/2_Register.py", "Register a version", ":material/upload:", Permission.REGISTER_MODEL
    ),
    PageSpec("pages/6_Compliance.py", "Compliance", ":material/gavel:"),
    PageSpec("pages/3_Reviews.py", "Reviews", ":material/rate_review:"),
    PageSpec("pages/4_Deployments.py", "Deployments", ":material/rocket_launch:"),
    PageSpec("pages/7_Audit.py", "Audit trail", ":material/verified:", Permission.VIEW_AUDIT),
    PageSpec(
        "pages/8_Admin.py", "Admin", ":material/admin_panel_settings:", Permission.MANAGE_USERS
    ),
    PageSpec("pages/9_Profile.py", "Profile and tokens", ":material/person:"),
)


def visible_pages(principal: Principal) -> list[PageSpec]:
    return [p for p in PAGES if p.permission is None or principal.can_anywhere(p.permission)]


def spec_for(path: str) -> PageSpec:
    for spec in PAGES:
        if spec.path == path:
            return spec
    raise KeyError(path)
