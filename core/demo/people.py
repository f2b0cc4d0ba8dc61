"""The demo team and its people, one per role."""

from __future__ import annotations

from dataclasses import dataclass

from core.models import Role


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    roles: tuple[Role, ...]


DEMO_TEAM = "risk-analytics"
DEMO_PEOPLE = (
    DemoPerson("dana@demo.quorum", "Dana Scientist", (Role.DATA_SCIENTIST,)),
    DemoPerson("sam@demo.quorum", "Sam Scientist", (Role.DATA_SCIENTIST,)),
    DemoPerson("riley@demo.quorum", "Riley Reviewer", (Role.REVIEWER,)),
    DemoPerson("morgan@demo.quorum", "Morgan Validator", (Role.REVIEWER,)),
    DemoPerson("casey@demo.quorum", "Casey Compliance", (Role.COMPLIANCE,)),
    DemoPerson("blake@demo.quorum", "Blake Business", (Role.BUSINESS,)),
    DemoPerson("ada@demo.quorum", "Ada Admin", (Role.ADMIN,)),
)
