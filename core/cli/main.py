"""`quorum admin ...`: operator commands that use the store itself, run on the server.

They need QUORUM_DATABASE_URL set explicitly and refuse otherwise. Everything a person or a
pipeline does goes through the HTTP client (`quorum ...` with QUORUM_URL and QUORUM_TOKEN).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from core.cli import compliance, maintenance
from core.cli.common import Fail, show, split_json_flag, store
from core.cli.operator import (
    cmd_audit_checkpoint,
    cmd_audit_export,
    cmd_audit_keygen,
    cmd_audit_public_key,
    cmd_audit_verify,
    cmd_config_check,
    cmd_db_upgrade,
    cmd_demo_seed,
    cmd_jobs_list,
    cmd_jobs_run,
    cmd_users_create,
    cmd_users_grant,
    cmd_users_token,
)
from core.client.cli import quiet_libraries
from core.errors import QuorumError


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`).\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="quorum admin",
        description="Operator commands, run on the server: they use the database named by "
        "QUORUM_DATABASE_URL (which must be set) and refuse without it. People and pipelines "
        "use `quorum ...` with QUORUM_URL and QUORUM_TOKEN instead.",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (anywhere on the line)"
    )
    groups = parser.add_subparsers(dest="group", required=True, parser_class=Parser)

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
    add_audit_commands(aud)
    jobs = groups.add_parser("jobs", help="periodic jobs").add_subparsers(
        dest="command", required=True
    )
    run_job = jobs.add_parser("run", help="run a periodic job once, now")
    run_job.add_argument("name")
    run_job.set_defaults(handler=cmd_jobs_run)
    jobs.add_parser("list", help="the jobs and their recent runs").set_defaults(
        handler=cmd_jobs_list
    )

    usr = groups.add_parser("users", help="first people and bootstrap tokens").add_subparsers(
        dest="command", required=True
    )
    token = usr.add_parser("token", help="print a new personal access token for EMAIL")
    token.add_argument("email")
    token.add_argument("--name", default="cli")
    token.set_defaults(handler=cmd_users_token)
    create = usr.add_parser("create", help="add a person")
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
        help="accepted for older scripts: admin commands always act as the operator",
    )
    grant.set_defaults(handler=cmd_users_grant)

    for extend in (compliance.register_cli, maintenance.register_cli):
        extend(groups)
    return parser


def add_audit_commands(aud: argparse._SubParsersAction) -> None:
    aud.add_parser(
        "verify", help="check every MAC and link against the signed checkpoints"
    ).set_defaults(handler=cmd_audit_verify)
    aud.add_parser("checkpoint", help="write a signed checkpoint now").set_defaults(
        handler=cmd_audit_checkpoint
    )
    export = aud.add_parser("export", help="events and checkpoints for the offline verifier")
    export.add_argument("directory")
    export.set_defaults(handler=cmd_audit_export)
    aud.add_parser("public-key", help="the key that verifies checkpoints").set_defaults(
        handler=cmd_audit_public_key
    )
    aud.add_parser("keygen", help="print a new checkpoint signing key").set_defaults(
        handler=cmd_audit_keygen
    )


def main(argv: Sequence[str] | None = None) -> int:
    args_list, as_json = split_json_flag(sys.argv[1:] if argv is None else argv)
    quiet_libraries()
    args = build_parser().parse_args(args_list)
    try:
        db = store()
        result = args.handler(args, db)
    except Fail as failed:
        show(failed.result, as_json)
        return 1
    except QuorumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(
            f"error: the store could not be used ({reason}); check QUORUM_DATABASE_URL "
            "and run `quorum admin db upgrade`",
            file=sys.stderr,
        )
        return 3
    show(result, as_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
