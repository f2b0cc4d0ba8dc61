"""The demo store: a team, people in every role, models. Idempotent: safe to run twice."""

from __future__ import annotations

from sqlmodel import select

from core import audit
from core.auth import SYSTEM
from core.db import Database
from core.demo.compliance import seed_compliance
from core.demo.findings import seed_findings
from core.demo.models import seed_models, seed_reviews
from core.demo.monitoring import seed_monitoring
from core.demo.notifications import seed_deliveries, seed_webhook
from core.demo.people import DEMO_PEOPLE, DEMO_TEAM
from core.models import Role, RoleGrant, Team, User
from core.services import compare, users


def is_empty(db: Database) -> bool:
    with db.read() as session:
        return session.exec(select(User).limit(1)).first() is None


def seed(db: Database, *, with_models: bool = True) -> list[str]:
    """Create whatever part of the demo is missing; returns what it created."""
    created = _seed_people(db)
    if with_models:
        created += seed_webhook(db)
        created += seed_models(db)
        created += seed_reviews(db)
        created += seed_compliance(db)
        created += seed_monitoring(db)
        created += seed_findings(db)
        created += seed_deliveries(db)
        computed, _, _ = compare.refresh_counts(db)
        if computed:  # a second seed finds every comparison stored
            created.append(f"{computed} stored comparisons")
    return created


def _seed_people(db: Database) -> list[str]:
    created: list[str] = []
    with db.write() as session:
        team = session.exec(select(Team).where(Team.name == DEMO_TEAM)).first()
        if team is None:
            team = Team(name=DEMO_TEAM, description="Credit, demand and diagnostics models.")
            session.add(team)
            session.flush()
            audit.record(
                session,
                SYSTEM,
                "team.created",
                object_type="team",
                object_id=team.id,
                summary=f"Demo team {DEMO_TEAM} created",
            )
            created.append(f"team {DEMO_TEAM}")
        for person in DEMO_PEOPLE:
            if session.exec(select(User).where(User.email == person.email)).first():
                continue
            user = User(email=person.email, name=person.name, is_demo=True)
            session.add(user)
            session.flush()
            for role in person.roles:
                team_id = None if role in (Role.ADMIN, Role.COMPLIANCE) else team.id
                session.add(
                    RoleGrant(user_id=user.id or 0, role=role, team_id=team_id, source="demo")
                )
            audit.record(
                session,
                SYSTEM,
                "user.created",
                object_type="user",
                object_id=user.id,
                summary=f"Demo user {person.name} created with roles "
                + ", ".join(r.value for r in person.roles),
            )
            created.append(f"user {person.email}")
    return created


def demo_principal(db: Database, email: str) -> users.Principal:
    return users.principal_by_email(db, email)
