"""Operator commands: they use the store directly (migrations, demo data, first users)."""

from __future__ import annotations

import argparse
from typing import Any

from core import migrate
from core.cli.common import Fail, acting_user
from core.config import get_settings
from core.db import Database
from core.errors import ConfigurationError


def cmd_db_upgrade(args: argparse.Namespace, db: Database) -> dict[str, str]:
    from alembic.util.exc import CommandError

    try:
        migrate.upgrade(db.url)
    except CommandError as error:
        raise ConfigurationError(
            f"The store's schema cannot be migrated: {error}. It was made by another version "
            "of Quorum; point QUORUM_DATABASE_URL at its own store or a new one."
        ) from None
    return {"status": "ok", "message": "Schema is at the latest revision."}


def cmd_demo_seed(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core import demo

    if args.if_empty and not demo.is_empty(db):
        return {"status": "skipped", "message": "The store already has data; nothing seeded."}
    created = demo.seed(db)
    return {
        "status": "ok",
        "created": created,
        "message": f"Demo seed created {len(created)} things."
        if created
        else "Demo data already complete; nothing to do.",
    }


def cmd_audit_verify(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core import audit

    with db.read() as session:
        report = audit.verify(session)
    result = {
        "intact": report.intact,
        "checked": report.checked,
        "first_broken_seq": report.first_broken_seq,
        "problem": report.problem,
        "message": report.message,
    }
    if not report.intact:
        raise Fail(result)
    return result


def cmd_config_check(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from pathlib import Path

    settings = get_settings()
    written = ""
    if settings.auth == "oidc":
        path = Path(args.secrets_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(settings.oidc_secrets_toml())
        path.chmod(0o600)
        written = f" Sign-in settings written to {path}."
    return {
        "environment": settings.env,
        "auth": settings.auth,
        "secrets_file": written.strip(),
        "message": f"Settings are valid ({settings.env}, {settings.auth} sign-in).{written}",
    }


def cmd_users_token(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import users

    new = users.issue_token_as_operator(db, args.email, args.name)
    return {"token": new.secret, "expires_at": str(new.token.expires_at), "message": new.secret}


def cmd_users_create(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.auth import OPERATOR
    from core.services import users

    user = users.create_user(db, OPERATOR, args.email, args.name)
    return {"id": user.id, "email": user.email, "message": f"User {user.email} created."}


def cmd_users_grant(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.auth import OPERATOR
    from core.models import PendingChange
    from core.services import users

    actor = OPERATOR if args.as_operator else acting_user(db)
    with db.read() as session:
        user = users.user_by_email(session, args.email)
        team_id = users.team_by_name(session, args.team).id if args.team else None
    grant = users.grant_role(db, actor, user.id or 0, args.role, team_id)
    scope = f"in team {args.team}" if args.team else "globally"
    if isinstance(grant, PendingChange):
        return {
            "pending_change_id": grant.id,
            "message": f"Granting yourself {args.role} {scope} waits for a second admin: they "
            f"confirm change #{grant.id} on the Admin page.",
        }
    return {"grant_id": grant.id, "message": f"{user.email} now holds {grant.role} {scope}."}
