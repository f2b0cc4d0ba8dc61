"""The `quorum` command: `quorum admin ...` runs the operator commands here on the server
(they use the database); everything else is the HTTP client, which imports nothing of the
server side."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if [a for a in args if a != "--json"][:1] == ["admin"]:
        from core.cli.main import main as operator_main

        args.remove("admin")
        return operator_main(args)
    from core.client.cli import main as client_main

    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
