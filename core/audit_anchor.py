"""Signed checkpoints of the audit chain in a write-once place, and the verifier that
checks the chain against them.

A checkpoint (number, last event's sequence and hash, event count, a keyless digest of
every event, time) is signed with the server's Ed25519 key and written once: to a local
directory (files created with O_EXCL, never overwritten, named by number) or to an S3
bucket with Object Lock in compliance mode. Whoever can write to the database can neither
forge nor remove one, so a deletion, truncation or replacement of anchored events shows.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session, col, select

from core import audit
from core.audit_check import (
    CheckpointFile,
    Finding,
    TrailReport,
    TrailWalker,
    check_checkpoints,
    span,
)
from core.audit_format import (
    GENESIS_HASH,
    KEYED,
    Checkpoint,
    CheckpointInvalid,
    file_digest,
    key_id,
    keyed_hash,
    public_key_text,
    read_checkpoint,
    sign_checkpoint,
)
from core.audit_keys import mac_key, signing_key, store_dir
from core.config import Settings
from core.db import Database
from core.errors import ConfigurationError, Conflict
from core.models import AuditEvent, utcnow

NAME_FORMAT = "checkpoint-{:010d}.json"


def checkpoint_name(number: int) -> str:
    return NAME_FORMAT.format(number)


def _number_of(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1]
    if not (stem.startswith("checkpoint-") and stem.endswith(".json")):
        return None
    digits = stem[len("checkpoint-") : -len(".json")]
    return int(digits) if digits.isdigit() else None


class CheckpointStore(Protocol):
    location: str

    def put(self, number: int, data: bytes) -> None:
        """Write checkpoint `number` once; raise Conflict if it already exists."""

    def files(self) -> list[CheckpointFile]:
        """Every checkpoint as first written, with a note on anything that tried to change it."""

    def latest(self) -> CheckpointFile | None:
        """The highest-numbered checkpoint as first written (cheap: names, then one file)."""


class LocalCheckpointStore:
    """An append-only directory: each file is created once (O_EXCL, then a hard link that
    fails rather than replace) and made read-only."""

    def __init__(self, directory: str | Path) -> None:
        self.root = Path(directory)
        self.location = str(self.root)

    def put(self, number: int, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / checkpoint_name(number)
        temporary = self.root / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, final)
        except FileExistsError:
            raise Conflict(
                f"Checkpoint {number} already exists in {self.location}; another process wrote "
                "it. Nothing was overwritten; the next run continues from it."
            ) from None
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(self.root)

    def latest(self) -> CheckpointFile | None:
        if not self.root.is_dir():
            return None
        numbers = [n for n in (_number_of(p) for p in os.listdir(self.root)) if n is not None]
        if not numbers:
            return None
        top = max(numbers)
        return CheckpointFile(top, (self.root / checkpoint_name(top)).read_bytes())

    def files(self) -> list[CheckpointFile]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            number = _number_of(path.name)
            if number is not None:
                found.append(CheckpointFile(number, path.read_bytes()))
        return sorted(found, key=lambda f: f.number)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3CheckpointStore:
    """A bucket with Object Lock: each checkpoint is put once with a compliance-mode
    retention, so nobody (root account included) can delete or change it until it expires.
    An overwrite attempt only adds a version; the first version is the one read."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        import boto3

        parsed = urlparse(url)
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.location = url
        self.retention_days = int(options.get("retention_days", 3650))
        self.mode = str(options.get("mode", "COMPLIANCE")).upper()
        self.client = boto3.client(
            "s3",
            endpoint_url=options.get("endpoint_url"),
            aws_access_key_id=options.get("key"),
            aws_secret_access_key=options.get("secret"),
            region_name=options.get("region", "us-east-1"),
        )
        self._require_object_lock()

    def _require_object_lock(self) -> None:
        from botocore.exceptions import ClientError

        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as error:
            raise ConfigurationError(
                f"The checkpoint bucket {self.bucket} has no Object Lock "
                f"({error.response['Error']['Code']}); create it with Object Lock enabled, "
                "or point QUORUM_AUDIT_CHECKPOINT_STORE at another bucket or a directory."
            ) from None
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise ConfigurationError(
                f"The checkpoint bucket {self.bucket} does not have Object Lock enabled; "
                "checkpoints must be write-once."
            )

    def _key(self, number: int) -> str:
        return (
            f"{self.prefix}/{checkpoint_name(number)}" if self.prefix else checkpoint_name(number)
        )

    def put(self, number: int, data: bytes) -> None:
        from botocore.exceptions import ClientError

        key = self._key(number)
        if self._versions(key):
            raise Conflict(
                f"Checkpoint {number} already exists in {self.location}; nothing was overwritten."
            )
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ObjectLockMode=self.mode,
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=self.retention_days),
                ChecksumAlgorithm="SHA256",
                ContentType="application/json",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise Conflict(f"Checkpoint {number} already exists in {self.location}.") from None
            raise

    def latest(self) -> CheckpointFile | None:
        numbers = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            numbers += [n for n in (_number_of(o["Key"]) for o in page.get("Contents", [])) if n]
        if not numbers:
            return None
        top = max(numbers)
        versions = self._versions(self._key(top))
        body = self.client.get_object(
            Bucket=self.bucket, Key=self._key(top), VersionId=versions[-1]["VersionId"]
        )
        return CheckpointFile(top, body["Body"].read(), _s3_note(len(versions), False))

    def _versions(self, key: str) -> list[dict[str, Any]]:
        response = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        return [v for v in response.get("Versions", []) if v["Key"] == key]

    def files(self) -> list[CheckpointFile]:
        versions: dict[str, list[dict[str, Any]]] = {}
        markers: set[str] = set()
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for version in page.get("Versions", []):
                versions.setdefault(version["Key"], []).append(version)
            markers.update(m["Key"] for m in page.get("DeleteMarkers", []))
        found = []
        for key, items in versions.items():
            number = _number_of(key)
            if number is None:
                continue
            first = items[-1]  # S3 lists a key's versions newest first
            body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=first["VersionId"])
            found.append(
                CheckpointFile(number, body["Body"].read(), _s3_note(len(items), key in markers))
            )
        return sorted(found, key=lambda f: f.number)


def _s3_note(count: int, deleted: bool) -> str:
    notes = []
    if count > 1:
        notes.append(f"was overwritten ({count} versions; the first, locked one is used)")
    if deleted:
        notes.append("was deleted (a delete marker hides it; the locked version is used)")
    return " and ".join(notes)


def checkpoint_store(settings: Settings, database_url: str) -> CheckpointStore:
    location = settings.audit_checkpoint_store
    if location.startswith("s3://"):
        return S3CheckpointStore(location, settings.audit_checkpoint_store_options)
    if "://" in location:
        raise ConfigurationError(
            f"QUORUM_AUDIT_CHECKPOINT_STORE must be a directory or an s3:// URL, not {location!r}."
        )
    return LocalCheckpointStore(location or store_dir(settings, database_url) / "checkpoints")


# --- the trail's anchors as the server sees them ------------------------------------------------


@dataclass(frozen=True)
class Anchors:
    """The store's checkpoint location, its signed checkpoints and the keys to check them."""

    settings: Settings
    url: str
    store: CheckpointStore

    @classmethod
    def of(cls, settings: Settings, url: str) -> Anchors:
        return cls(settings, url, checkpoint_store(settings, url))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return signing_key(self.settings, self.url).public_key()

    def mac_ok(self, event: Mapping[str, Any]) -> bool:
        expected = keyed_hash(mac_key(self.settings, self.url), event)
        return hmac.compare_digest(expected, str(event["hash"]))

    def checkpoints(self) -> tuple[list[Checkpoint], list[Finding]]:
        return check_checkpoints(self.store.files(), self.public_key)

    def latest(self) -> tuple[Checkpoint | None, bytes]:
        """The last checkpoint and its file; Conflict if it cannot be trusted."""
        file = self.store.latest()
        if file is None:
            return None, b""
        try:
            return read_checkpoint(file.data, self.public_key), file.data
        except CheckpointInvalid as error:
            raise Conflict(
                f"The last checkpoint ({file.number}) in {self.store.location} cannot be "
                f"trusted: {error}. No new checkpoint was written; investigate with quorum "
                "audit verify."
            ) from None


def _events(session: Session, after: int = 0) -> Iterator[tuple[dict[str, Any], int | None]]:
    for event in audit.iter_events(session, after=after):
        yield audit.event_fields(event), event.id


def verify(session: Session, settings: Settings) -> TrailReport:
    """Check every event's MAC and link, then the trail against every signed checkpoint."""
    anchors = Anchors.of(settings, audit.store_url(session))
    trusted, problems = anchors.checkpoints()
    walker = TrailWalker(trusted, anchors.mac_ok)
    for fields, row_id in _events(session):
        walker.add(fields, row_id)
    return walker.finish(problems)


@dataclass(frozen=True)
class CheckpointOutcome:
    checkpoint: Checkpoint | None
    message: str


def checkpoint(db: Database, settings: Settings, *, force: bool = False) -> CheckpointOutcome:
    """Write the next checkpoint if N events are pending or M minutes have passed (or
    always, with `force`), after checking that what is new follows the last checkpoint."""
    anchors = Anchors.of(settings, str(db.engine.url))
    latest, latest_file = anchors.latest()
    with db.read() as session:
        head = audit.last_seq(session)
        due = _due(latest, head, settings, force)
        if due:
            return CheckpointOutcome(None, due)
        walker = _checked_since(session, latest, head, anchors)
        keyed_from = latest.keyed_from if latest and latest.keyed_from else _first_keyed(session)
    made = _make(latest, latest_file, walker, keyed_from)
    anchors.store.put(made.number, sign_checkpoint(made, signing_key(settings, anchors.url)))
    return CheckpointOutcome(
        made,
        f"Checkpoint {made.number} anchors events up to #{made.seq} in {anchors.store.location}.",
    )


def _due(latest: Checkpoint | None, head: int, settings: Settings, force: bool) -> str:
    """Why no checkpoint is needed now, or "" when one is."""
    if latest is None or force:
        return ""
    pending = head - latest.seq
    if pending <= 0:
        return f"No new event since checkpoint {latest.number}; nothing to anchor."
    age = utcnow() - datetime.fromisoformat(latest.created_at)
    if pending >= settings.audit_checkpoint_events or age >= timedelta(
        minutes=settings.audit_checkpoint_minutes
    ):
        return ""
    waits = "1 event waits" if pending == 1 else f"{pending} events wait"
    return (
        f"{waits} for the next checkpoint (due at {settings.audit_checkpoint_events} events "
        f"or after {settings.audit_checkpoint_minutes} minutes)."
    )


def _checked_since(
    session: Session, latest: Checkpoint | None, head: int, anchors: Anchors
) -> TrailWalker:
    if latest is not None and head < latest.seq:
        raise Conflict(
            f"The trail ends at event #{head} but checkpoint {latest.number} anchored events up "
            f"to #{latest.seq}: events {span(head + 1, latest.seq)} were deleted. No checkpoint "
            "was written; run quorum admin audit verify."
        )
    walker = TrailWalker([latest] if latest else [], anchors.mac_ok, start=latest)
    if latest is not None and latest.seq > 0:
        anchored = next(audit.iter_events(session, after=latest.seq - 1, through=latest.seq), None)
        if anchored is None or anchored.hash != latest.head_hash:
            raise Conflict(
                f"Event #{latest.seq} no longer matches checkpoint {latest.number}: the trail was "
                "rewritten. No checkpoint was written; run quorum admin audit verify."
            )
    for fields, row_id in _events(session, after=latest.seq if latest else 0):
        if fields["seq"] > head:
            break
        walker.add(fields, row_id)
    report = walker.finish()
    if not report.intact:
        raise Conflict(
            f"The events since the last checkpoint do not verify ({report.problem}). No "
            "checkpoint was written; run quorum admin audit verify."
        )
    return walker


def _make(
    latest: Checkpoint | None, latest_file: bytes, walker: TrailWalker, keyed_from: int | None
) -> Checkpoint:
    previous = file_digest(latest_file) if latest is not None else GENESIS_HASH
    return Checkpoint(
        number=(latest.number + 1) if latest else 1,
        seq=walker.last_seq,
        count=walker.count,
        head_hash=walker.prev_hash,
        digest=walker.digest,
        keyed_from=keyed_from,
        created_at=utcnow().isoformat(timespec="seconds"),
        previous=previous,
    )


def _first_keyed(session: Session) -> int | None:
    return session.exec(
        select(AuditEvent.seq).where(AuditEvent.mac == KEYED).order_by(col(AuditEvent.seq)).limit(1)
    ).first()


# --- what the Audit page shows, and the export for the offline verifier -----------------------


@dataclass(frozen=True)
class AnchorStatus:
    public_key: str
    key_id: str
    location: str
    last_checkpoint: Checkpoint | None
    pending: int


def status(session: Session, settings: Settings) -> AnchorStatus:
    anchors = Anchors.of(settings, audit.store_url(session))
    try:
        latest, _file = anchors.latest()
    except Conflict:
        latest = None  # the page's verify names it; the status shows nothing is anchored
    head = audit.last_seq(session)
    return AnchorStatus(
        public_key=public_key_text(anchors.public_key),
        key_id=key_id(anchors.public_key),
        location=anchors.store.location,
        last_checkpoint=latest,
        pending=head - (latest.seq if latest else 0),
    )


def export(session: Session, settings: Settings, directory: str | Path) -> dict[str, Any]:
    """Write events.jsonl, the checkpoint files and the public key for the offline verifier."""
    target = Path(directory)
    (target / "checkpoints").mkdir(parents=True, exist_ok=True)
    anchors = Anchors.of(settings, audit.store_url(session))
    events = 0
    with (target / "events.jsonl").open("w", encoding="utf-8") as handle:
        for fields, _row_id in _events(session):
            handle.write(json.dumps(fields, sort_keys=True) + "\n")
            events += 1
    files = anchors.store.files()
    for file in files:
        (target / "checkpoints" / checkpoint_name(file.number)).write_bytes(file.data)
    public = public_key_text(anchors.public_key)
    (target / "public-key.txt").write_text(public + "\n")
    return {"events": events, "checkpoints": len(files), "public_key": public}
