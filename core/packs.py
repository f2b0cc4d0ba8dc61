"""The approval pack of a version as PDF or HTML, exported and audited."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core import audit, reports
from core.artifacts import ArtifactStore
from core.auth import Permission, Principal
from core.db import Database
from core.errors import InvalidInput
from core.services import read_as, unit_of_work
from core.services.compliance.pack import assemble_pack
from core.services.registry import get_model, get_version

# --- the approval pack ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedPack:
    filename: str
    mime: str
    data: bytes
    fingerprint: str


PACK_FORMATS = {"pdf": "application/pdf", "html": "text/html"}


def export_pack(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    fmt: str,
    *,
    store: ArtifactStore | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> ExportedPack:
    """The approval pack of a version as PDF or HTML; the export and its fingerprint are audited."""
    kind = (fmt or "").strip().lower().lstrip(".")
    if kind not in PACK_FORMATS:
        raise InvalidInput(f"{fmt!r} is not a pack format; use pdf or html.")
    with read_as(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.EXPORT_REPORTS,
            what="of {model}",
        )
    pack = assemble_pack(
        db, actor, model_name, number, generated_by=actor.label, store=store, progress=progress
    )
    if progress is not None:
        progress(0.75, f"Rendering the {kind.upper()}")
    data = reports.render_pdf(pack) if kind == "pdf" else reports.render_html(pack).encode()
    if progress is not None:
        progress(0.95, "Recording the export in the audit trail")
    with unit_of_work(db, actor) as session:
        model = get_model(
            session,
            actor,
            model_name,
            permission=Permission.EXPORT_REPORTS,
            what="of {model}",
        )
        version = get_version(session, model, number)
        audit.record(
            session,
            actor,
            "pack.exported",
            object_type="version",
            object_id=version.id,
            model_id=model.id,
            summary=f"Approval pack of {model.name} v{number} exported as {kind.upper()} "
            f"(fingerprint {pack.fingerprint[:16]}…)",
            details={"fingerprint": pack.fingerprint, "format": kind, "bytes": len(data)},
        )
    return ExportedPack(
        f"{model_name}-v{number}-approval-pack.{kind}", PACK_FORMATS[kind], data, pack.fingerprint
    )


class PackJob:
    """An export running in a background thread, with its progress for the page to draw."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.step = "Starting"
        self.result: ExportedPack | None = None
        self.error: Exception | None = None
        self._finished = threading.Event()

    def update(self, fraction: float, step: str) -> None:
        self.fraction, self.step = max(0.0, min(fraction, 1.0)), step

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float) -> bool:
        """True once the export has finished (well or not), after at most `timeout` seconds."""
        return self._finished.wait(timeout)


def start_export(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    fmt: str,
    *,
    store: ArtifactStore | None = None,
) -> PackJob:
    """`export_pack` in a background thread; the returned job reports progress and the result."""
    job = PackJob()

    def run() -> None:
        try:
            job.result = export_pack(
                db, actor, model_name, number, fmt, store=store, progress=job.update
            )
            job.update(1.0, "Done")
        except Exception as error:  # noqa: BLE001 - handed to the page, which shows or re-raises it
            job.error = error
        finally:
            job._finished.set()

    threading.Thread(target=run, name=f"pack-{model_name}-v{number}", daemon=True).start()
    return job
