"""Progress bars for uploads, downloads and the server's work after an upload (rich).

Drawn on stderr, so stdout stays the command's result for pipes and `--json`: live on a
terminal; elsewhere only with QUORUM_PROGRESS=1, as one final line per transfer (for CI logs).
QUORUM_PROGRESS=0 hides them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from core.client.http import Progress


def wanted() -> bool:
    setting = os.environ.get("QUORUM_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "never"):
        return False
    if setting in ("1", "true", "yes", "always"):
        return True
    return sys.stderr.isatty()


@contextmanager
def transfer(description: str, waiting: str = "") -> Iterator[Progress | None]:
    """A callback `(done, total)` drawing a bar; once all is sent, `waiting` is shown."""
    if not wanted():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    console = Console(stderr=True)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Bar(*columns, console=console, transient=console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if waiting and total and done >= total:
                bar.update(task, description=waiting)

        yield update
