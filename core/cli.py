"""The `quorum` command. Operator commands use the store directly; user commands a token."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core import migrate
from core.auth import Principal
from core.config import get_settings
from core.db import Database
from core.errors import AuthenticationFailed, ConfigurationError, InvalidInput, QuorumError

Handler = Callable[[argparse.Namespace, Database], Any]


def _db() -> Database:
    return Database(get_settings().database_url)


def acting_user(db: Database) -> Principal:
    from core.services import users

    token = os.environ.get("QUORUM_TOKEN", "").strip()
    if not token:
        raise AuthenticationFailed(
            "This command acts as a user: set QUORUM_TOKEN to a personal access token "
            "(create one on the Profile page, or ask an operator: quorum users token EMAIL)."
        )
    return users.authenticate_token(db, token)


# --- operator commands ---------------------------------------------------------------------


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
        raise _Fail(result)
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
    from core.services import users

    actor = OPERATOR if args.as_operator else acting_user(db)
    with db.read() as session:
        user = users.user_by_email(session, args.email)
        team_id = users.team_by_name(session, args.team).id if args.team else None
    grant = users.grant_role(db, actor, user.id or 0, args.role, team_id)
    scope = f"in team {args.team}" if args.team else "globally"
    return {"grant_id": grant.id, "message": f"{user.email} now holds {grant.role} {scope}."}


def cmd_whoami(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    me = acting_user(db)
    roles = sorted(f"{g.role.value}" + (f"@{g.team_id}" if g.team_id else "") for g in me.grants)
    return {
        "email": me.email,
        "name": me.name,
        "roles": roles,
        "message": f"{me.name} <{me.email}>: {', '.join(roles) or 'no roles'}",
    }


def cmd_models_list(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import portfolio

    acting_user(db)
    rows = portfolio.portfolio(db, recent=0).models
    lines = [f"{m.name}  v{m.latest_version or '-'}  {m.latest_state}  {m.risk_tier}" for m in rows]
    return {"models": [m.__dict__ for m in rows], "message": "\n".join(lines) or "No models."}


def cmd_models_register(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from pathlib import Path

    from core.services import registry, reviews, versions

    actor = acting_user(db)
    model_path, eval_path = Path(args.model_file), Path(args.eval)
    for path in (model_path, eval_path):
        if not path.is_file():
            raise InvalidInput(f"{path} is not a readable file.")
    upload = versions.VersionUpload(
        model=args.name,
        model_file=model_path.read_bytes(),
        model_filename=model_path.name,
        eval_file=eval_path.read_bytes(),
        eval_filename=eval_path.name,
        target=args.target,
        sensitive=args.sensitive,
        notes=args.notes,
        code_ref=args.code_ref,
        tags=registry.parse_tag_pairs(args.tag),
    )
    version = versions.register_version(db, actor, upload)
    if args.submit:
        version = reviews.submit_for_review(db, actor, args.name, version.number)
    with db.read() as session:
        ev = versions.evaluation_of(session, version.id or 0)
    metrics = ev.result.get("metrics", {}) if ev else {}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if v is not None)
    return {
        "model": args.name,
        "version": version.number,
        "state": version.state,
        "sha256": version.artifact_sha256,
        "metrics": metrics,
        "message": f"{args.name} v{version.number} registered ({version.state}): {shown}",
    }


def cmd_review_submit(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import reviews

    version = reviews.submit_for_review(
        db, acting_user(db), args.model, args.version, note=args.note
    )
    return {
        "state": version.state,
        "message": f"{args.model} v{args.version} submitted for review.",
    }


def cmd_review_decide(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import registry, reviews

    reviews.decide(db, acting_user(db), args.model, args.version, args.decision, args.reason)
    with db.read() as session:
        state = registry.get_version(
            session, registry.get_model(session, args.model), args.version
        ).state
    return {
        "decision": args.decision,
        "state": state,
        "message": f"Recorded {args.decision.replace('_', ' ')} on {args.model} "
        f"v{args.version}; the version is now {state.replace('_', ' ')}.",
    }


def cmd_deploy_promote(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import deployments

    deployments.promote(db, acting_user(db), args.model, args.version, args.env, args.reason)
    return {
        "environment": args.env,
        "version": args.version,
        "message": f"{args.model} v{args.version} is live in {args.env}.",
    }


def cmd_deploy_rollback(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import deployments

    deployments.rollback(db, acting_user(db), args.model, args.env, args.reason)
    live = deployments.status(db, args.model).get(args.env)
    return {
        "environment": args.env,
        "version": live,
        "message": f"Rolled back {args.model} in {args.env}; v{live} is live.",
    }


def cmd_deploy_status(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import deployments

    acting_user(db)
    live = deployments.status(db, args.model)
    history = [
        {
            "environment": h.environment,
            "version": h.version,
            "action": h.action,
            "actor": h.actor,
            "reason": h.reason,
            "live_from": h.live_from.isoformat(),
            "live_until": h.live_until.isoformat() if h.live_until else None,
        }
        for h in deployments.history(db, args.model)
    ]
    lines = [f"{env}: " + (f"v{n}" if n else "nothing live") for env, n in live.items()]
    return {"model": args.model, "live": live, "history": history, "message": "\n".join(lines)}


class _Fail(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("message", "failed"))
        self.result = result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quorum", description="Quorum from the shell.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    groups = parser.add_subparsers(dest="group", required=True)

    dbp = groups.add_parser("db", help="schema").add_subparsers(dest="command", required=True)
    dbp.add_parser("upgrade", help="migrate the store to the latest schema").set_defaults(
        handler=cmd_db_upgrade
    )

    demo = groups.add_parser("demo", help="demo data").add_subparsers(dest="command", required=True)
    seed = demo.add_parser("seed", help="create the demo team, people and models")
    seed.add_argument("--if-empty", action="store_true", help="only when the store is empty")
    seed.set_defaults(handler=cmd_demo_seed)

    config = groups.add_parser("config", help="settings").add_subparsers(
        dest="command", required=True
    )
    check = config.add_parser("check", help="validate settings; write the OIDC secrets file")
    check.add_argument("--secrets-out", default="var/secrets.toml")
    check.set_defaults(handler=cmd_config_check)

    aud = groups.add_parser("audit", help="audit trail").add_subparsers(
        dest="command", required=True
    )
    aud.add_parser("verify", help="check the hash chain").set_defaults(handler=cmd_audit_verify)

    usr = groups.add_parser("users", help="people and roles").add_subparsers(
        dest="command", required=True
    )
    token = usr.add_parser("token", help="(operator) print a new access token for EMAIL")
    token.add_argument("email")
    token.add_argument("--name", default="cli")
    token.set_defaults(handler=cmd_users_token)
    create = usr.add_parser("create", help="(operator) add a person")
    create.add_argument("email")
    create.add_argument("name")
    create.set_defaults(handler=cmd_users_create)
    grant = usr.add_parser("grant", help="grant ROLE to EMAIL, globally or in --team")
    grant.add_argument("email")
    grant.add_argument("role")
    grant.add_argument("--team")
    grant.add_argument(
        "--as-operator",
        action="store_true",
        help="act as the operator instead of the QUORUM_TOKEN user",
    )
    grant.set_defaults(handler=cmd_users_grant)

    groups.add_parser("whoami", help="the user QUORUM_TOKEN acts as").set_defaults(
        handler=cmd_whoami
    )
    _add_model_commands(groups)
    _add_review_commands(groups)
    _add_deploy_commands(groups)
    for extend in _extensions():
        extend(groups)
    return parser


def _add_model_commands(groups: Any) -> None:
    models = groups.add_parser("models", help="the registry").add_subparsers(
        dest="command", required=True
    )
    models.add_parser("list", help="registered models").set_defaults(handler=cmd_models_list)
    register = models.add_parser("register", help="register a new version of model NAME")
    register.add_argument("name")
    register.add_argument("model_file")
    register.add_argument("--eval", required=True, help="evaluation data (CSV or Parquet)")
    register.add_argument("--target", help="target column (default: the model's)")
    register.add_argument("--sensitive", help="sensitive column for fairness")
    register.add_argument("--notes", default="")
    register.add_argument("--code-ref", default="")
    register.add_argument("--tag", action="append", default=[], help="key=value, repeatable")
    register.add_argument("--submit", action="store_true", help="submit for review at once")
    register.set_defaults(handler=cmd_models_register)
    _accept_json(register)


def _add_review_commands(groups: Any) -> None:
    review = groups.add_parser("review", help="review decisions").add_subparsers(
        dest="command", required=True
    )
    submit = review.add_parser("submit", help="submit MODEL VERSION for review")
    submit.add_argument("model")
    submit.add_argument("version", type=int)
    submit.add_argument("--note", default="")
    submit.set_defaults(handler=cmd_review_submit)
    for name, decision in (
        ("approve", "approve"),
        ("request-changes", "request_changes"),
        ("reject", "reject"),
    ):
        cmd = review.add_parser(name, help=f"{name.replace('-', ' ')} MODEL VERSION")
        cmd.add_argument("model")
        cmd.add_argument("version", type=int)
        cmd.add_argument("--reason", default="", required=decision != "approve")
        cmd.set_defaults(handler=cmd_review_decide, decision=decision)
        _accept_json(cmd)


def _add_deploy_commands(groups: Any) -> None:
    deploy = groups.add_parser("deploy", help="deployments").add_subparsers(
        dest="command", required=True
    )
    promote = deploy.add_parser("promote", help="make MODEL VERSION live in --env")
    promote.add_argument("model")
    promote.add_argument("version", type=int)
    promote.add_argument("--env", required=True)
    promote.add_argument("--reason", default="")
    promote.set_defaults(handler=cmd_deploy_promote)
    rollback = deploy.add_parser("rollback", help="go back to the previously live version")
    rollback.add_argument("model")
    rollback.add_argument("--env", required=True)
    rollback.add_argument("--reason", required=True)
    rollback.set_defaults(handler=cmd_deploy_rollback)
    status = deploy.add_parser("status", help="what is live where, and the history")
    status.add_argument("model")
    status.set_defaults(handler=cmd_deploy_status)
    _accept_json(promote, rollback, status)


def _accept_json(*commands: argparse.ArgumentParser) -> None:
    """`--json` after the command too (`quorum deploy status MODEL --json`)."""
    for command in commands:
        command.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
        )


def _extensions() -> list[Callable[[Any], None]]:
    from core.cli_compliance import register_cli as compliance_cli
    from core.cli_maintenance import register_cli as maintenance_cli
    from core.cli_monitoring import register_cli as monitoring_cli

    return [compliance_cli, maintenance_cli, monitoring_cli]


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, dict) and "message" in result:
        print(result["message"])
    elif result is not None:
        print(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        db = _db()
        result = args.handler(args, db)
    except _Fail as failed:
        _print(failed.result, args.json)
        return 1
    except QuorumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(
            f"error: the store could not be used ({reason}); check QUORUM_DATABASE_URL "
            "and run `quorum db upgrade`",
            file=sys.stderr,
        )
        return 3
    _print(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
