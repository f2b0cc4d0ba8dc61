"""`quorum admin maintenance ...`: operator commands that keep the store and artifacts consistent."""

from __future__ import annotations

import argparse
from typing import Any

from core.db import Database


def cmd_maintenance_sweep(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core import maintenance
    from core.artifacts import default_store

    report = maintenance.sweep(
        db, default_store(), dry_run=args.dry_run, older_than_seconds=args.older_than
    )
    return report.to_dict()


def register_cli(groups: Any) -> None:
    maintenance = groups.add_parser("maintenance", help="store upkeep")
    commands = maintenance.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser(
        "sweep",
        help="remove artifact files no record points at; list records whose file is missing",
    )
    sweep.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    sweep.add_argument(
        "--older-than",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="only remove files at least this old (default 3600), so uploads in flight stay",
    )
    sweep.set_defaults(handler=cmd_maintenance_sweep)
