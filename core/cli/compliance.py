"""`quorum compliance ...`: the approval pack and sign-off expiry reminders from the shell."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.db import Database
from core.errors import InvalidInput


def cmd_compliance_pack(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.cli.common import acting_user
    from core.services import packs

    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in packs.PACK_FORMATS:
        raise InvalidInput(f"--out {out} must end in .pdf or .html to choose the pack format.")
    if not out.parent.is_dir():
        raise InvalidInput(f"The folder {out.parent} does not exist; create it or choose another.")
    pack = packs.export_pack(db, acting_user(db), args.model, args.version, fmt)
    out.write_bytes(pack.data)
    return {
        "file": str(out),
        "format": fmt,
        "bytes": len(pack.data),
        "fingerprint": pack.fingerprint,
        "message": f"Approval pack of {args.model} v{args.version} written to {out} "
        f"(fingerprint {pack.fingerprint}).",
    }


def cmd_compliance_remind(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.services import compliance

    sent = compliance.remind_expiring(db)
    return {"reminders": sent, "message": f"{sent} sign-off expiry reminders sent."}


def register_cli(groups: Any) -> None:
    comp = groups.add_parser("compliance", help="approval packs and sign-offs").add_subparsers(
        dest="command", required=True
    )
    pack = comp.add_parser("pack", help="export the approval pack of MODEL VERSION")
    pack.add_argument("model")
    pack.add_argument("version", type=int)
    pack.add_argument("--out", required=True, help="FILE.pdf or FILE.html")
    pack.set_defaults(handler=cmd_compliance_pack)
    comp.add_parser(
        "remind", help="(operator) remind owners of sign-offs expiring within 30 days"
    ).set_defaults(handler=cmd_compliance_remind)
