"""What every `quorum` command shares: the store, the acting user, output and failure."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from core.auth import Principal
from core.config import get_settings
from core.db import Database
from core.errors import AuthenticationFailed

Handler = Callable[[argparse.Namespace, Database], Any]


def store() -> Database:
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


class Fail(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("message", "failed"))
        self.result = result


def accept_json(*commands: argparse.ArgumentParser) -> None:
    """`--json` after the command too (`quorum deploy status MODEL --json`)."""
    for command in commands:
        command.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
        )


def show(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, dict) and "message" in result:
        print(result["message"])
    elif result is not None:
        print(result)
