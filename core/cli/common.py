"""What every `quorum admin` command shares: the store, output and failure."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from core.config import get_settings
from core.db import Database
from core.errors import ConfigurationError

Handler = Callable[[argparse.Namespace, Database], Any]

NO_STORE = (
    "quorum admin runs on the server and uses the database: set QUORUM_DATABASE_URL to the "
    "store (e.g. sqlite:///var/quorum.db). People and pipelines use `quorum` with QUORUM_URL "
    "and QUORUM_TOKEN instead."
)


def store() -> Database:
    """The store named by QUORUM_DATABASE_URL; refused when the variable is not set."""
    if not os.environ.get("QUORUM_DATABASE_URL", "").strip():
        raise ConfigurationError(NO_STORE)
    return Database(get_settings().database_url)


class Fail(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("message", "failed"))
        self.result = result


def split_json_flag(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`--json` before or after the subcommand: take it out wherever it stands."""
    args = [a for a in argv if a != "--json"]
    return args, len(args) != len(argv)


def show(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, dict) and "message" in result:
        print(result["message"])
    elif result is not None:
        print(result)
