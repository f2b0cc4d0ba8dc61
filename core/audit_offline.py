"""Verify an exported audit trail with only the export and the public key; no database,
no server, no audit key.

    python -m core.audit_offline EXPORT_DIR --public-key KEY

EXPORT_DIR holds events.jsonl (one event a line, as `quorum admin audit export` writes it) and
checkpoints/checkpoint-NNNNNNNNNN.json. KEY is the base64 public key (the README and the
Audit page show it) or a file holding it. Without the audit key the MACs cannot be
recomputed; the signed checkpoints' keyless digests vouch for the content of every
anchored event instead, and events newer than the last checkpoint are reported as not
yet anchored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.audit_check import CheckpointFile, TrailReport, TrailWalker, check_checkpoints
from core.audit_format import load_public_key


def _checkpoint_number(path: Path) -> int | None:
    digits = path.name.removeprefix("checkpoint-").removesuffix(".json")
    return int(digits) if path.name.startswith("checkpoint-") and digits.isdigit() else None


def read_checkpoint_files(directory: Path) -> list[CheckpointFile]:
    files = []
    for path in sorted(directory.glob("checkpoint-*.json")):
        number = _checkpoint_number(path)
        if number is not None:
            files.append(CheckpointFile(number, path.read_bytes()))
    return files


def verify_export(directory: str | Path, public_key: str) -> TrailReport:
    root = Path(directory)
    key = load_public_key(public_key)
    trusted, problems = check_checkpoints(read_checkpoint_files(root / "checkpoints"), key)
    walker = TrailWalker(trusted, mac_ok=None)
    with (root / "events.jsonl").open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"events.jsonl line {line_number} is not JSON ({error.msg})"
                ) from None
            walker.add(event)
    return walker.finish(problems)


def _key_text(value: str) -> str:
    path = Path(value)
    return path.read_text() if path.is_file() else value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.audit_offline", description="Verify an exported audit trail."
    )
    parser.add_argument("export_dir", help="directory with events.jsonl and checkpoints/")
    parser.add_argument("--public-key", required=True, help="base64 public key, or a file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        report = verify_export(args.export_dir, _key_text(args.public_key))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.message)
        print(
            "MACs were not recomputed (only the server holds the audit key); anchored content was checked against the signed checkpoints."
        )
    return 0 if report.intact else 1


if __name__ == "__main__":
    sys.exit(main())
