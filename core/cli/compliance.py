"""`quorum admin compliance remind`: sign-off expiry reminders, run on a schedule."""

from __future__ import annotations

import argparse
from typing import Any

from core.db import Database


def cmd_compliance_remind(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import compliance

    sent = compliance.remind_expiring(db)
    return {"reminders": sent, "message": f"{sent} sign-off expiry reminders sent."}


def register_cli(groups: Any) -> None:
    comp = groups.add_parser("compliance", help="sign-off upkeep").add_subparsers(
        dest="command", required=True
    )
    comp.add_parser(
        "remind", help="remind owners of sign-offs expiring within 30 days"
    ).set_defaults(handler=cmd_compliance_remind)
