"""`quorum whoami|models|review|deploy`: the registry, reviews and deployments as a token user."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import accept_json, acting_user
from core.db import Database
from core.errors import InvalidInput


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

    rows = portfolio.portfolio(db, acting_user(db), recent=0).models
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

    actor = acting_user(db)
    reviews.decide(db, actor, args.model, args.version, args.decision, args.reason)
    with db.read() as session:
        model = registry.get_model(session, actor, args.model)
        state = registry.get_version(session, model, args.version).state
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

    actor = acting_user(db)
    deployments.rollback(db, actor, args.model, args.env, args.reason)
    live = deployments.status(db, actor, args.model).get(args.env)
    return {
        "environment": args.env,
        "version": live,
        "message": f"Rolled back {args.model} in {args.env}; v{live} is live.",
    }


def cmd_deploy_status(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import deployments

    actor = acting_user(db)
    live = deployments.status(db, actor, args.model)
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
        for h in deployments.history(db, actor, args.model)
    ]
    lines = [f"{env}: " + (f"v{n}" if n else "nothing live") for env, n in live.items()]
    return {"model": args.model, "live": live, "history": history, "message": "\n".join(lines)}


def add_model_commands(groups: Any) -> None:
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
    accept_json(register)


def add_review_commands(groups: Any) -> None:
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
        accept_json(cmd)


def add_deploy_commands(groups: Any) -> None:
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
    accept_json(promote, rollback, status)
