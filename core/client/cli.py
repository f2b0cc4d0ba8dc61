"""The `quorum` command for people and pipelines: an HTTP client of the server's REST API.

It needs QUORUM_URL (default http://127.0.0.1:8501) and QUORUM_TOKEN, never the database.
`--json` may stand anywhere on the line. Exit codes: 0 done, 1 a check found a problem
(`audit verify`), 2 the request was refused as invalid, unknown or conflicting (HTTP 4xx),
3 permission denied (HTTP 403), 4 no valid token (HTTP 401), 5 the server did not answer or
failed, 130 interrupted. Operator commands (`quorum admin ...`) run on the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from core.client.commands import Output, add_commands
from core.client.http import ServerFailed, ServerUnreachable, one_line
from core.errors import AuthenticationFailed, InvalidInput, PermissionDenied, QuorumError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_FORBIDDEN, EXIT_UNAUTHENTICATED, EXIT_SERVER, EXIT_INTERRUPTED = 3, 4, 5, 130


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{message} (see `{self.prog} --help`).")


def build_parser() -> Parser:
    parser = Parser(
        prog="quorum",
        description="Quorum from the shell, through its REST API: set QUORUM_URL and "
        "QUORUM_TOKEN. Operator commands that need the database: `quorum admin --help` "
        "(on the server).",
        epilog="Exit codes: 0 done, 1 a check found a problem, 2 invalid or refused request, "
        "3 permission denied, 4 no valid token, 5 server unreachable or failed.",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (anywhere on the line)"
    )
    groups = parser.add_subparsers(dest="group", required=True, parser_class=Parser)
    add_commands(groups)
    return parser


def split_json_flag(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`--json` before or after the subcommand: take it out wherever it stands."""
    args, as_json, literal = [], False, False
    for arg in argv:
        if arg == "--" and not literal:
            literal = True
        elif arg == "--json" and not literal:
            as_json = True
            continue
        args.append(arg)
    return args, as_json


def exit_code(error: QuorumError) -> int:
    if isinstance(error, PermissionDenied):
        return EXIT_FORBIDDEN
    if isinstance(error, AuthenticationFailed):
        return EXIT_UNAUTHENTICATED
    if isinstance(error, ServerUnreachable | ServerFailed):
        return EXIT_SERVER
    return EXIT_INVALID


def show(output: Output, as_json: bool) -> None:
    if as_json:
        print(json.dumps(output.data, indent=2, default=str))
    elif output.message:
        print(output.message)


def fail(message: str, code: int) -> int:
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code


def quiet_libraries() -> None:
    """Warnings (scikit-learn, numpy, pandas, scipy, skops: whichever library raises them) are
    never printed by a command: its output is the server's answer, one line on error."""
    warnings.simplefilter("ignore")


def main(argv: Sequence[str] | None = None) -> int:
    args_list, as_json = split_json_flag(sys.argv[1:] if argv is None else argv)
    quiet_libraries()
    try:
        args = build_parser().parse_args(args_list)
        output = run(args)
    except QuorumError as error:
        return fail(str(error), exit_code(error))
    except KeyboardInterrupt:
        return fail("Interrupted; anything the server had not confirmed was not done.", 130)
    except OSError as error:
        return fail(f"{error.strerror or error} ({error.filename or 'file'}).", EXIT_INVALID)
    except Exception as error:  # noqa: BLE001 - the last edge: one line, never a traceback
        if os.environ.get("QUORUM_DEBUG"):
            raise
        return fail(
            f"The command failed unexpectedly ({type(error).__name__}: {error}); run it again "
            "with QUORUM_DEBUG=1 for the details and report them.",
            EXIT_SERVER,
        )
    show(output, as_json)
    return EXIT_CHECK_FAILED if output.failed else EXIT_OK


def run(args: argparse.Namespace) -> Output:
    from core.client.sdk import Client

    with Client() as client:
        result: Output = args.handler(args, client)
    return result


def entry() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    entry()
