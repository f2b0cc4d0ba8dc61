"""What an approval pack says, as plain data: the compliance service fills it in
(core/services/compliance/pack.py) and the renderer (core/reports.py) draws it and nothing else.

Every statement is about the one version the pack describes. To add a section, add a field to
`PackData` and one block to core/templates/pack.html.j2.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chart:
    """A chart the server drew, embedded as a data: URI (the PDF renderer fetches nothing)."""

    key: str
    title: str
    png: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass(frozen=True)
class Statement:
    """One sentence the pack asserts, with a yes/no/unknown flag for colour and tests."""

    text: str
    ok: bool | None = None
    link: str = ""


@dataclass(frozen=True)
class LiveStatus:
    environment: str
    status: str  # live | was live | never
    text: str


@dataclass(frozen=True)
class DecisionRow:
    reviewer: str
    decision: str
    round: int
    roles: str
    at_utc: str
    reason: str
    artifact_sha256: str
    policy: str


@dataclass(frozen=True)
class SignatureRow:
    kind: str  # signature | revocation
    meaning: str
    printed_name: str
    role: str
    signed_at_utc: str
    expires_at_utc: str
    status: str
    problem: str
    reason: str
    policy: str
    artifact_sha256: str
    evidence_sha256: str


@dataclass(frozen=True)
class CardSection:
    key: str
    title: str
    text: str
    required: bool  # the policy of the model's tier requires it before production

    @property
    def empty(self) -> bool:
        return not self.text.strip()


@dataclass(frozen=True)
class Verdict:
    """The first page: what a stakeholder needs to decide, all about this version."""

    goal: Statement
    live: list[LiveStatus]
    approvals: Statement
    signatures: Statement
    gate: Statement
    checklists: Statement
    incidents: Statement
    card: Statement
    open_risks: list[Statement]


@dataclass(frozen=True)
class EvidenceRow:
    kind: str
    reference: str
    sha256: str
    added_by: str
    at_utc: str


@dataclass(frozen=True)
class ItemRow:
    section: str
    title: str
    required: bool
    status: str
    owner: str
    notes: str
    na_reason: str
    evidence: list[EvidenceRow]


@dataclass(frozen=True)
class ChecklistFacts:
    key: str
    name: str
    version: str
    complete: bool
    required_open: int
    items: list[ItemRow]


@dataclass(frozen=True)
class PolicyChange:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class PolicyVersionFacts:
    version: int
    at_utc: str
    by: str
    confirmed_by: str
    reason: str
    changes: list[PolicyChange]


@dataclass(frozen=True)
class PolicyFacts:
    in_force: str
    fields: dict[str, str]
    history: list[PolicyVersionFacts]


@dataclass(frozen=True)
class ComparisonFacts:
    available: bool
    reason: str = ""
    candidate: int = 0
    champion: int = 0
    basis: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    goal_candidate: str = ""
    goal_champion: str = ""


@dataclass(frozen=True)
class IncidentRow:
    environment: str
    kind: str
    metric: str
    status: str
    opened_utc: str
    message: str


@dataclass(frozen=True)
class DeploymentRow:
    environment: str
    action: str
    actor: str
    live_from_utc: str
    live_until_utc: str
    reason: str


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at_utc: str
    actor: str
    action: str
    summary: str


@dataclass(frozen=True)
class FindingRow:
    id: int
    severity: str
    status: str
    owner: str
    raised_by: str
    due_on: str
    text: str
    history: str  # each step in one line: who did what, when


@dataclass(frozen=True)
class PackData:
    title: str
    generated_at_utc: str
    generated_by: str
    model: dict[str, str]  # name, team, owner, risk tier, task, goal, tags (label -> text)
    version: dict[str, str]
    verdict: Verdict
    card: list[CardSection]
    evaluation: dict[str, Any]  # available, dataset, dataset_sha256, rows, metrics
    fairness: dict[str, Any]  # sensitive, summary, slices
    comparison: ComparisonFacts
    checklists: list[ChecklistFacts]
    evidence_sha256: str
    decisions: list[DecisionRow]
    signoffs: list[SignatureRow]
    policy: PolicyFacts
    gate: list[Statement]
    deployments: list[DeploymentRow]
    incidents: list[IncidentRow]
    audit: list[AuditRow]
    audit_verification: Statement
    charts: list[Chart] = field(default_factory=list)
    findings: list[FindingRow] = field(default_factory=list)
    revalidation: Statement | None = None  # for a version that has been live in production
    outside: Statement | None = None  # windows aggregated outside Quorum, if any

    def chart(self, key: str) -> Chart | None:
        return next((c for c in self.charts if c.key == key), None)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of everything the pack says (charts by their hash)."""
        content = asdict(self)
        content["charts"] = [
            {"key": c.key, "title": c.title, "sha256": c.sha256} for c in self.charts
        ]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()
