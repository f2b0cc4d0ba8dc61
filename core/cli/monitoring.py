"""`quorum monitor ...`: ingest production data and labels, and print the monitoring report."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from core.db import Database
from core.errors import InvalidInput


def _file(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"{file} is not a readable file; check the path.")
    return file


def cmd_monitor_ingest(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.cli.common import acting_user
    from core.services import monitoring

    file = _file(args.file)
    result = monitoring.ingest(
        db, acting_user(db), args.model, file, env=args.env, source="cli", filename=file.name
    )
    return _result(result)


def cmd_monitor_labels(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.cli.common import acting_user
    from core.services import monitoring

    file = _file(args.file)
    result = monitoring.ingest_labels(
        db, acting_user(db), args.model, file, env=args.env, source="cli", filename=file.name
    )
    return _result(result)


def _result(result: Any) -> dict[str, Any]:
    return {
        "batch": result.batch_id,
        "model": result.model,
        "environment": result.environment,
        "version": result.version,
        "rows": result.n_rows,
        "windows": [w.isoformat() for w in result.windows],
        "alerts": result.alerts,
        "retraining_task": result.retraining_task_id,
        "message": result.message,
    }


def cmd_monitor_report(args: argparse.Namespace, db: Database) -> dict[str, Any]:
    from core.cli.common import acting_user
    from core.services import monitoring

    actor = acting_user(db)
    window = None
    if args.window:
        try:
            window = date.fromisoformat(args.window)
        except ValueError:
            raise InvalidInput(f"--window {args.window!r} is not a date like 2026-01-31.") from None
    return monitoring.report(db, actor, args.model, args.env, window)


def register_cli(groups: Any) -> None:
    monitor = groups.add_parser("monitor", help="production monitoring").add_subparsers(
        dest="command", required=True
    )
    ingest = monitor.add_parser("ingest", help="ingest production predictions of MODEL")
    ingest.add_argument("model")
    ingest.add_argument("file", help="CSV or Parquet: timestamp, prediction_id, features")
    ingest.add_argument("--env", default="production")
    ingest.set_defaults(handler=cmd_monitor_ingest)
    labels = monitor.add_parser("labels", help="join labels to MODEL's predictions by id")
    labels.add_argument("model")
    labels.add_argument("file", help="CSV or Parquet: prediction_id, label")
    labels.add_argument("--env", default="production")
    labels.set_defaults(handler=cmd_monitor_labels)
    report = monitor.add_parser("report", help="drift, quality and performance of a window")
    report.add_argument("model")
    report.add_argument("--env", default="production")
    report.add_argument("--window", help="window start date (default: the latest)")
    report.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    report.set_defaults(handler=cmd_monitor_report)
