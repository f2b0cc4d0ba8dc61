"""`quorum admin ...` commands: they use the store directly (migrations, demo data, first
users, bootstrap tokens, the offline audit check)."""

from __future__ import annotations

import argparse
from typing import Any

from core import migrate
from core.cli.common import Fail
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
    """(operator) Every MAC and link, against the signed checkpoints; names what changed."""
    from core import audit_anchor

    with db.read() as session:
        report = audit_anchor.verify(session, get_settings())
    result = report.as_dict()
    if not report.intact:
        raise Fail(result)
    return result


def cmd_audit_checkpoint(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    """(operator) Write the next signed checkpoint now."""
    from core import audit_anchor

    outcome = audit_anchor.checkpoint(db, get_settings(), force=True)
    made = outcome.checkpoint
    return {
        "number": made.number if made else None,
        "seq": made.seq if made else None,
        "message": outcome.message,
    }


def cmd_audit_export(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    """(operator) events.jsonl + checkpoints + public key, for python -m core.audit_offline."""
    from core import audit_anchor

    with db.read() as session:
        written = audit_anchor.export(session, get_settings(), args.directory)
    return {
        **written,
        "message": (
            f"Exported {written['events']} event(s) and {written['checkpoints']} checkpoint(s) to "
            f"{args.directory}; check them with: python -m core.audit_offline {args.directory} "
            f"--public-key {written['public_key']}"
        ),
    }


def cmd_audit_public_key(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core import audit_anchor

    with db.read() as session:
        status = audit_anchor.status(session, get_settings())
    return {"public_key": status.public_key, "key_id": status.key_id, "message": status.public_key}


def cmd_audit_keygen(args: argparse.Namespace, db: Database | None) -> dict[str, Any]:
    """Print a new Ed25519 signing key (for QUORUM_AUDIT_SIGNING_KEY) and its public key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from core.audit_format import public_key_text

    key = Ed25519PrivateKey.generate()
    private = base64.b64encode(
        key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ).decode()
    public = public_key_text(key.public_key())
    return {
        "signing_key": private,
        "public_key": public,
        "message": f"QUORUM_AUDIT_SIGNING_KEY={private}  (public key: {public})",
    }


def cmd_jobs_run(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    """(operator) Run one periodic job now, under the same cluster lock as the scheduler."""
    from core import scheduler

    outcome = scheduler.run_job(db, args.name, get_settings(), force=True)
    result = {"job": outcome.job, "status": outcome.status, "message": outcome.message}
    if outcome.status == "failed":
        raise Fail(result)
    return result


def cmd_jobs_list(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core import scheduler

    with db.read() as session:
        runs = scheduler.recent_runs(session, 10)
    names = [f"{j.name} (every {j.every})" for j in scheduler.jobs()]
    lines = [f"{r.started_at:%Y-%m-%d %H:%M:%S} {r.job} {r.status}: {r.message}" for r in runs]
    return {
        "jobs": names,
        "recent": [{"job": r.job, "status": r.status, "message": r.message} for r in runs],
        "message": "\n".join(["Jobs: " + ", ".join(names), *lines]),
    }


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

    with db.read() as session:
        user = users.user_by_email(session, args.email)
        team_id = users.team_by_name(session, args.team).id if args.team else None
    grant = users.grant_role(db, OPERATOR, user.id or 0, args.role, team_id)
    scope = f"in team {args.team}" if args.team else "globally"
    if isinstance(grant, PendingChange):
        return {
            "pending_change_id": grant.id,
            "message": f"Granting yourself {args.role} {scope} waits for a second admin: they "
            f"confirm change #{grant.id} on the Admin page.",
        }
    return {"grant_id": grant.id, "message": f"{user.email} now holds {grant.role} {scope}."}
