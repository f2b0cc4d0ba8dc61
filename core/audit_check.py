"""Checking an audit trail against its signed checkpoints; pure, shared by the server's
verifier (which also checks every MAC with the audit key) and the offline one (which has
only an export and the public key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.audit_format import (
    GENESIS_HASH,
    KEYED,
    LEGACY,
    REKEYED_ACTION,
    Checkpoint,
    CheckpointInvalid,
    digest_step,
    file_digest,
    legacy_hash,
    read_checkpoint,
)

MacCheck = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Finding:
    """One thing that changed: `kind` is rewritten, deleted, truncated, replaced or checkpoint."""

    kind: str
    first_seq: int | None
    last_seq: int | None
    message: str
    first_id: int | None = None


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint as the store holds it; `note` names what the store saw (e.g. overwrites)."""

    number: int
    data: bytes
    note: str = ""


def span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}–#{last}"


def check_checkpoints(
    files: Sequence[CheckpointFile], public_key: Ed25519PublicKey
) -> tuple[list[Checkpoint], list[Finding]]:
    """The checkpoints whose signature verifies, and what is wrong with the others."""
    trusted: list[Checkpoint] = []
    findings: list[Finding] = []
    previous_file: CheckpointFile | None = None
    expected = 1
    for file in sorted(files, key=lambda f: f.number):
        if file.number != expected:
            findings.append(
                _checkpoint(
                    f"checkpoints {span(expected, file.number - 1)} are missing from the checkpoint store"
                )
            )
        if file.note:
            findings.append(_checkpoint(f"checkpoint {file.number} {file.note}"))
        try:
            checkpoint = read_checkpoint(file.data, public_key)
        except CheckpointInvalid as error:
            findings.append(_checkpoint(f"checkpoint {file.number} cannot be trusted: {error}"))
            previous_file, expected = file, file.number + 1
            continue
        findings.extend(_chain_problems(file, checkpoint, previous_file, trusted))
        trusted.append(checkpoint)
        previous_file, expected = file, file.number + 1
    return trusted, findings


def _chain_problems(
    file: CheckpointFile,
    checkpoint: Checkpoint,
    previous_file: CheckpointFile | None,
    trusted: list[Checkpoint],
) -> list[Finding]:
    found = []
    if checkpoint.number != file.number:
        found.append(
            _checkpoint(f"checkpoint file {file.number} holds checkpoint {checkpoint.number}")
        )
    expected_previous = (
        GENESIS_HASH
        if file.number == 1
        else file_digest(previous_file.data)
        if previous_file
        else None
    )
    if expected_previous is not None and checkpoint.previous != expected_previous:
        found.append(
            _checkpoint(f"checkpoint {file.number} does not follow checkpoint {file.number - 1}")
        )
    if trusted and checkpoint.seq < trusted[-1].seq:
        found.append(
            _checkpoint(f"checkpoint {file.number} anchors an older event than the one before it")
        )
    return found


def _checkpoint(message: str) -> Finding:
    return Finding("checkpoint", None, None, message)


@dataclass(frozen=True)
class TrailReport:
    """The verdict on the whole trail, with what is anchored and what is not yet."""

    intact: bool
    checked: int
    findings: tuple[Finding, ...] = ()
    last_seq: int = 0
    checkpoints: int = 0
    last_checkpoint: Checkpoint | None = None
    unanchored: tuple[int, int] | None = None
    macs_checked: bool = True

    @property
    def anchored_through(self) -> int | None:
        return self.last_checkpoint.seq if self.last_checkpoint else None

    @property
    def first_broken_seq(self) -> int | None:
        seqs = [f.first_seq for f in self.findings if f.first_seq is not None]
        return min(seqs) if seqs else None

    @property
    def first_broken_id(self) -> int | None:
        first = self.first_broken_seq
        return next((f.first_id for f in self.findings if f.first_seq == first), None)

    @property
    def problem(self) -> str:
        return self.findings[0].message if self.findings else ""

    @property
    def message(self) -> str:
        return f"{self._verdict()} {self.anchoring}"

    def _verdict(self) -> str:
        if self.intact:
            what = "MAC" if self.macs_checked else "link"
            events = "1 event" if self.checked == 1 else f"{self.checked} events"
            return f"Audit trail intact: {events}, every {what} matches its chain."
        first = self.first_broken_seq
        where = f" at event #{first}" if first is not None else ""
        return f"Audit trail broken{where}: " + " ".join(f"{f.message}." for f in self.findings)

    @property
    def anchoring(self) -> str:
        latest = self.last_checkpoint
        if latest is None:
            return (
                "No checkpoint has been written yet, so nothing is anchored: deleting the newest "
                "events or replacing the whole trail would not be detected; write one with "
                "`quorum admin audit checkpoint`."
            )
        when = latest.created_at.replace("T", " ").removesuffix("+00:00")
        where = f"Anchored through event #{latest.seq} by checkpoint {latest.number} ({when} UTC)"
        if self.unanchored is None:
            return f"{where}; no event is newer."
        first, last = self.unanchored
        which = f"event #{first} is" if first == last else f"events {span(first, last)} are"
        return (
            f"{where}; {which} newer than the last checkpoint and not yet anchored, so deleting "
            "them would go unnoticed until the next checkpoint."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "checked": self.checked,
            "first_broken_seq": self.first_broken_seq,
            "problem": self.problem,
            "findings": [f.__dict__ for f in self.findings],
            "anchored_through": self.anchored_through,
            "last_checkpoint": self.last_checkpoint.number if self.last_checkpoint else None,
            "unanchored": list(self.unanchored) if self.unanchored else None,
            "message": self.message,
        }


@dataclass
class TrailWalker:
    """Feed it every event in sequence order, then call `finish()`.

    `mac_ok` checks a keyed event's MAC (the server has the key; offline it is None and the
    signed checkpoints' keyless digests vouch for the content instead). `start` resumes after
    a trusted checkpoint (the checkpoint writer checks only what is new)."""

    checkpoints: Sequence[Checkpoint] = ()
    mac_ok: MacCheck | None = None
    start: Checkpoint | None = None
    expected: int = 1
    prev_hash: str = GENESIS_HASH
    digest: str = GENESIS_HASH
    count: int = 0
    checked: int = 0
    last_seq: int = 0
    seen_keyed: bool = False
    _findings: list[Finding] = field(default_factory=list)
    _rewritten: list[tuple[int, int | None, str]] = field(default_factory=list)
    _legacy_run: list[tuple[int, int | None]] = field(default_factory=list)
    _anchor_mismatch: list[Checkpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_seq: dict[int, list[Checkpoint]] = {}
        for checkpoint in self.checkpoints:
            self._by_seq.setdefault(checkpoint.seq, []).append(checkpoint)
        anchors = [c.keyed_from for c in self.checkpoints if c.keyed_from is not None]
        self.keyed_from = anchors[0] if anchors else None
        if self.start is not None:
            self.expected, self.prev_hash = self.start.seq + 1, self.start.head_hash
            self.digest, self.count, self.last_seq = (
                self.start.digest,
                self.start.count,
                self.start.seq,
            )
            self.seen_keyed = self.keyed_from is not None and self.start.seq >= self.keyed_from

    def add(self, event: Mapping[str, Any], row_id: int | None = None) -> None:
        seq = int(event["seq"])
        gap = seq > self.expected
        if gap:
            self._findings.append(
                Finding(
                    "deleted",
                    self.expected,
                    seq - 1,
                    f"events {span(self.expected, seq - 1)} are missing: they were deleted",
                    row_id,
                )
            )
        reason = self._content_problem(event, seq, row_id)
        if not reason and not gap and event["prev_hash"] != self.prev_hash:
            reason = "its link to the previous event does not match (rewritten or reordered)"
        if reason:
            self._rewritten.append((seq, row_id, reason))
        self.digest = digest_step(self.digest, event)
        self.count += 1
        for checkpoint in self._by_seq.get(seq, []):
            if checkpoint.head_hash != event["hash"] or checkpoint.digest != self.digest:
                self._anchor_mismatch.append(checkpoint)
        self.prev_hash, self.expected, self.last_seq = event["hash"], seq + 1, seq
        self.checked += 1

    def _content_problem(self, event: Mapping[str, Any], seq: int, row_id: int | None) -> str:
        scheme = event.get("mac")
        if scheme == LEGACY:
            if self.seen_keyed or (self.keyed_from is not None and seq >= self.keyed_from):
                return (
                    "it uses the unkeyed SHA-256 scheme after the trail switched to the keyed chain"
                )
            if legacy_hash(event) != event["hash"]:
                return "its content does not match its hash"
            self._legacy_run.append((seq, row_id))
            return ""
        if scheme != KEYED:
            return f"its hash scheme {scheme!r} is unknown"
        first_keyed, self.seen_keyed = not self.seen_keyed, True
        after_legacy, self._legacy_run = first_keyed and bool(self._legacy_run), []
        if self.keyed_from is not None and seq < self.keyed_from:
            return "it claims the keyed scheme before the trail switched to it"
        if self.mac_ok is not None and not self.mac_ok(event):
            return "its MAC does not match under the server's audit key"
        if after_legacy and (
            event["action"] != REKEYED_ACTION
            or (event.get("details") or {}).get("last_sha256_head") != self.prev_hash
        ):
            return (
                "the switch to the keyed chain is not an audit.rekeyed event naming the "
                "last SHA-256 head"
            )
        return ""

    def finish(self, checkpoint_findings: Sequence[Finding] = ()) -> TrailReport:
        for seq, row_id in self._legacy_run:
            self._rewritten.append(
                (
                    seq,
                    row_id,
                    "it uses the unkeyed SHA-256 chain and no audit.rekeyed event follows it",
                )
            )
        findings = self._rewrite_findings() + self._findings
        latest = max(self.checkpoints, key=lambda c: (c.seq, c.number), default=None)
        findings += self._tail_findings(latest)
        findings += self._anchor_findings(findings)
        findings.sort(key=lambda f: f.first_seq if f.first_seq is not None else 0)
        findings += list(checkpoint_findings)
        anchored = latest.seq if latest else 0
        unanchored = (anchored + 1, self.last_seq) if self.last_seq > anchored else None
        return TrailReport(
            intact=not findings,
            checked=self.checked,
            findings=tuple(findings),
            last_seq=self.last_seq,
            checkpoints=len(self.checkpoints),
            last_checkpoint=latest,
            unanchored=unanchored,
            macs_checked=self.mac_ok is not None,
        )

    def _rewrite_findings(self) -> list[Finding]:
        rows = sorted(self._rewritten)
        if not rows:
            return []
        if len(rows) == self.checked and self.start is None and self.checked > 1:
            return [
                Finding(
                    "replaced",
                    rows[0][0],
                    rows[-1][0],
                    f"every event ({span(rows[0][0], rows[-1][0])}) fails: {rows[0][2]}; the "
                    "whole trail was rewritten or replaced by someone without the audit key",
                    rows[0][1],
                )
            ]
        runs: list[list[tuple[int, int | None, str]]] = []
        for row in rows:
            if runs and row[0] == runs[-1][-1][0] + 1:
                runs[-1].append(row)
            else:
                runs.append([row])
        return [
            Finding(
                "rewritten",
                run[0][0],
                run[-1][0],
                f"{'event' if len(run) == 1 else 'events'} {span(run[0][0], run[-1][0])} "
                f"{'was' if len(run) == 1 else 'were'} rewritten: {run[0][2]}",
                run[0][1],
            )
            for run in runs
        ]

    def _tail_findings(self, latest: Checkpoint | None) -> list[Finding]:
        if latest is None or self.last_seq >= latest.seq:
            return []
        if self.checked == 0 and self.start is None:
            return [
                Finding(
                    "truncated",
                    1 if latest.seq else None,
                    latest.seq or None,
                    f"the trail is empty but checkpoint {latest.number} anchored {latest.count} "
                    f"events up to #{latest.seq}: the trail was truncated",
                )
            ]
        first = self.last_seq + 1
        return [
            Finding(
                "deleted",
                first,
                latest.seq,
                f"events {span(first, latest.seq)} are missing although checkpoint "
                f"{latest.number} anchored them: the newest events were deleted",
            )
        ]

    def _anchor_findings(self, found: list[Finding]) -> list[Finding]:
        covered = [f.first_seq for f in found if f.first_seq is not None]
        out = []
        for checkpoint in self._anchor_mismatch:
            if any(seq <= checkpoint.seq for seq in covered):
                continue
            out.append(
                Finding(
                    "rewritten",
                    1,
                    checkpoint.seq,
                    f"checkpoint {checkpoint.number} anchored a different history up to event "
                    f"#{checkpoint.seq}: events up to #{checkpoint.seq} were rewritten",
                )
            )
        return out
