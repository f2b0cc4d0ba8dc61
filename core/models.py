"""SQLModel tables. Every table has a one-line purpose; JSON columns hold plain read models."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    DATA_SCIENTIST = "data_scientist"
    REVIEWER = "reviewer"
    BUSINESS = "business_stakeholder"
    COMPLIANCE = "compliance_officer"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.DATA_SCIENTIST: "Data scientist",
    Role.REVIEWER: "Reviewer",
    Role.BUSINESS: "Business stakeholder",
    Role.COMPLIANCE: "Compliance officer",
    Role.ADMIN: "Admin",
}


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Task(StrEnum):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"


class VersionState(StrEnum):
    REGISTERED = "registered"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    ARCHIVED = "archived"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


def json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def json_list_column() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Team(SQLModel, table=True):
    """A group that owns models; roles may be granted per team."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True, index=True)
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """A person; created on first login (OIDC) or by an admin, never deleted. An identity
    provider's account is its issuer and subject together; the email is only a contact."""

    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_user_identity"),)
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=120)
    issuer: str | None = Field(default=None, max_length=255)
    subject: str | None = Field(default=None, max_length=255)
    is_active: bool = True
    is_demo: bool = False
    is_service: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class RoleGrant(SQLModel, table=True):
    """A role held by a user, globally (team_id null) or for one team."""

    __table_args__ = (UniqueConstraint("user_id", "role", "team_id", name="uq_grant"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    source: str = Field(default="store", max_length=20)
    granted_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class AccessToken(SQLModel, table=True):
    """A personal access token for the CLI and SDK; only its keyed hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=80)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to an API request sent with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("token_id", "key", name="uq_idempotency_token_key"),)
    id: int | None = Field(default=None, primary_key=True)
    token_id: int = Field(foreign_key="accesstoken.id", index=True)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int | None = None
    response: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow)


class MLModel(SQLModel, table=True):
    """A registered model: a team's answer to one business problem, with its goal."""

    __tablename__ = "ml_model"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True, index=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    owner_id: int = Field(foreign_key="user.id")
    purpose: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    risk_tier: str = Field(default=RiskTier.MEDIUM, max_length=10)
    task: str = Field(max_length=40)
    target: str = Field(default="", max_length=120)
    sensitive_column: str | None = Field(default=None, max_length=120)
    goal_metric: str = Field(default="", max_length=40)
    goal_operator: str = Field(default=">=", max_length=2)
    goal_target: float | None = None
    goal_description: str = Field(default="", max_length=300)
    tags: dict[str, str] = json_column()
    model_card: dict[str, str] = json_column()
    monitoring_config: dict[str, Any] = json_column()
    archived_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    row_version: int = Field(default=1)


class ModelVersion(SQLModel, table=True):
    """One trained artifact of a model, with what it is, where it came from and its state."""

    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("model_id", "number", name="uq_version_number"),
        Index("ix_version_latest_state", "model_id", "number", "state"),
        Index("ix_version_author_state", "registered_by_id", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    number: int
    state: str = Field(default=VersionState.REGISTERED, max_length=30, index=True)
    artifact_key: str = Field(max_length=200)
    artifact_sha256: str = Field(max_length=64)
    artifact_size: int
    artifact_format: str = Field(max_length=20)
    original_filename: str = Field(default="", max_length=255)
    estimator_class: str = Field(default="", max_length=200)
    library_versions: dict[str, str] = json_column()
    feature_names: list[str] = json_list_column()
    feature_types: dict[str, str] = json_column()
    params: dict[str, Any] = json_column()
    training_fingerprint: dict[str, Any] = json_column()
    tags: dict[str, str] = json_column()
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    code_ref: str = Field(default="", max_length=300)
    parent_id: int | None = Field(default=None, foreign_key="model_version.id")
    registered_by_id: int = Field(foreign_key="user.id")
    review_round: int = Field(default=0)
    # A binary classifier predicts its positive class when that class's probability is at
    # least this; None: the estimator's own predict (0.5 for most).
    decision_threshold: float | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    row_version: int = Field(default=1)


class Evaluation(SQLModel, table=True):
    """Metrics of a version on one evaluation dataset, and that data's profile."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    dataset_sha256: str = Field(max_length=64)
    dataset_key: str = Field(max_length=200)
    dataset_filename: str = Field(default="", max_length=255)
    n_rows: int
    target: str = Field(max_length=120)
    sensitive_column: str | None = Field(default=None, max_length=120)
    result: dict[str, Any] = json_column()
    reference_profile: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class ApprovalPolicyVersion(SQLModel, table=True):
    """One version of the approval policy of a risk tier; never edited, the latest is in
    force. `fields` is a document of core.policy's schema at `schema_version`."""

    __tablename__ = "approval_policy_version"
    __table_args__ = (UniqueConstraint("risk_tier", "version", name="uq_policy_version"),)
    id: int | None = Field(default=None, primary_key=True)
    risk_tier: str = Field(max_length=10, index=True)
    version: int
    schema_version: int
    fields: dict[str, Any] = json_column()
    reason: str = Field(default="", max_length=500)
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    confirmed_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class RoleMapping(SQLModel, table=True):
    """An admin's rule: a value of the identity provider's roles claim grants this role (in this
    team, or globally when team_id is null). Claims map only through these rows."""

    __tablename__ = "role_mapping"
    __table_args__ = (UniqueConstraint("claim_value", "role", "team_id", name="uq_role_mapping"),)
    id: int | None = Field(default=None, primary_key=True)
    claim_value: str = Field(max_length=200, index=True)
    role: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class PendingChange(SQLModel, table=True):
    """A change of power (a self-grant, a policy change, a lower risk tier) waiting for a
    second admin; applied only when another admin confirms it."""

    __tablename__ = "pending_change"
    __table_args__ = (Index("ix_pending_change_status", "status", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = json_column()
    summary: str = Field(max_length=500)
    status: str = Field(default="pending", max_length=20)
    proposed_by_id: int = Field(foreign_key="user.id")
    proposed_at: datetime = Field(default_factory=utcnow)
    decided_by_id: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime | None = None
    decision_reason: str = Field(default="", max_length=500)


class Decision(SQLModel, table=True):
    """A reviewer's approve / request changes / reject, bound to the hashes it saw."""

    __table_args__ = (
        UniqueConstraint("version_id", "review_round", "reviewer_id", name="uq_one_decision"),
        Index("ix_decision_reviewer", "reviewer_id", "version_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    review_round: int = Field(default=1)
    reviewer_id: int = Field(foreign_key="user.id")
    roles: list[str] = json_list_column()
    kind: str = Field(max_length=20)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    artifact_sha256: str = Field(max_length=64)
    evaluation_sha256: str = Field(default="", max_length=64)
    policy_version_id: int | None = Field(default=None, foreign_key="approval_policy_version.id")
    created_at: datetime = Field(default_factory=utcnow)


class Comment(SQLModel, table=True):
    """Plain-text discussion on a version, optionally pinned to a metric or chart."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    author_id: int = Field(foreign_key="user.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    anchor: str = Field(default="", max_length=120)
    parent_id: int | None = Field(default=None, foreign_key="comment.id")
    created_at: datetime = Field(default_factory=utcnow)


class Deployment(SQLModel, table=True):
    """A period during which a version was live in an environment."""

    __table_args__ = (
        Index(
            "uq_one_live_version",
            "model_id",
            "environment",
            unique=True,
            sqlite_where=text("live_until IS NULL"),
            postgresql_where=text("live_until IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    environment: str = Field(max_length=40)
    action: str = Field(max_length=20)
    reason: str = Field(default="", max_length=500)
    actor_id: int = Field(foreign_key="user.id")
    live_from: datetime = Field(default_factory=utcnow)
    live_until: datetime | None = None
    replaced_by_id: int | None = Field(default=None, foreign_key="deployment.id")
    gate: dict[str, Any] = json_column()  # the gate's verdict and policy version it passed


class Notification(SQLModel, table=True):
    """An inbox entry for one user: a review to do, a mention, an alert."""

    __table_args__ = (Index("ix_notification_inbox", "user_id", "read_at"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
    kind: str = Field(max_length=40)
    title: str = Field(max_length=200)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    link: str = Field(default="", max_length=300)
    model_id: int | None = Field(default=None, foreign_key="ml_model.id")
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """One hash-chained record of a change or a refusal; never updated."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_model_seq", "model_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, index=True)
    actor_label: str = Field(max_length=254)
    action: str = Field(max_length=60, index=True)
    object_type: str = Field(max_length=40)
    object_id: str = Field(default="", max_length=80)
    model_id: int | None = Field(default=None)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = json_column()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    mac: str = Field(default="hmac-sha256", max_length=16)  # "sha256" before the keyed chain


class JobLock(SQLModel, table=True):
    """Who runs a periodic job now, until when (SQLite's lease; PostgreSQL uses advisory locks)."""

    __tablename__ = "job_lock"
    name: str = Field(primary_key=True, max_length=80)
    holder: str = Field(default="", max_length=120)
    lease_until: datetime = Field(default_factory=utcnow)


class JobRun(SQLModel, table=True):
    """One run of a periodic job: when, where, and how it ended."""

    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_job_started", "job", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=80)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = Field(default=None)
    status: str = Field(default="running", max_length=20)  # running, succeeded, failed
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    host: str = Field(default="", max_length=120)
    pid: int = Field(default=0)


class ChecklistTemplateRecord(SQLModel, table=True):
    """A compliance checklist template as the app uses it (loaded from data/, editable)."""

    __tablename__ = "checklist_template"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=80, unique=True)
    name: str = Field(max_length=200)
    body: dict[str, Any] = json_column()
    source: str = Field(default="file", max_length=20)
    updated_by_id: int | None = Field(default=None, foreign_key="user.id")
    updated_at: datetime = Field(default_factory=utcnow)
    row_version: int = Field(default=1)


class ChecklistItem(SQLModel, table=True):
    """The state of one checklist item for one version."""

    __tablename__ = "checklist_item"
    __table_args__ = (
        UniqueConstraint("version_id", "template_key", "item_key", name="uq_checklist_item"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    template_key: str = Field(max_length=80)
    item_key: str = Field(max_length=80)
    status: str = Field(default="open", max_length=20)
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    na_reason: str = Field(default="", max_length=1000)
    updated_by_id: int | None = Field(default=None, foreign_key="user.id")
    updated_at: datetime = Field(default_factory=utcnow)
    row_version: int = Field(default=1)


class Evidence(SQLModel, table=True):
    """Something that shows a checklist item is met: a link into Quorum or a stored document."""

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="checklist_item.id", index=True)
    kind: str = Field(max_length=30)
    reference: str = Field(default="", max_length=300)
    document_key: str | None = Field(default=None, max_length=200)
    document_sha256: str | None = Field(default=None, max_length=64)
    filename: str = Field(default="", max_length=255)
    added_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Signoff(SQLModel, table=True):
    """An electronic signature, or the revocation of one; never edited."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    kind: str = Field(default="signature", max_length=20)
    meaning: str = Field(max_length=60)
    signer_id: int = Field(foreign_key="user.id")
    printed_name: str = Field(max_length=120)
    role: str = Field(max_length=40)
    artifact_sha256: str = Field(max_length=64)
    evidence_sha256: str = Field(max_length=64)
    reason: str = Field(default="", max_length=1000)
    signed_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    supersedes_id: int | None = Field(default=None, foreign_key="signoff.id")
    policy_version_id: int | None = Field(default=None, foreign_key="approval_policy_version.id")
    review_round: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class InferenceBatch(SQLModel, table=True):
    """One ingested file or call of production data; all or nothing, recognised if repeated."""

    __tablename__ = "inference_batch"
    __table_args__ = (
        Index(
            "uq_batch_file_live",
            "model_id",
            "environment",
            "kind",
            "file_sha256",
            unique=True,
            sqlite_where=text("voided_at IS NULL"),
            postgresql_where=text("voided_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    version_id: int = Field(foreign_key="model_version.id")
    environment: str = Field(max_length=40)
    kind: str = Field(default="predictions", max_length=20)
    source: str = Field(max_length=20)
    file_sha256: str = Field(max_length=64)
    filename: str = Field(default="", max_length=255)
    n_rows: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    voided_at: datetime | None = None
    voided_by_id: int | None = Field(default=None, foreign_key="user.id")
    void_reason: str | None = Field(default=None, max_length=500)
    external: bool = False


class BatchFile(SQLModel, table=True):
    """One Parquet file of a batch's raw rows (one day of one chunk), or the aggregates a
    batch built outside Quorum sent instead of rows; deleted with the batch when it is voided."""

    __tablename__ = "batch_file"
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="inference_batch.id", index=True)
    day: datetime
    key: str = Field(max_length=300)
    n_rows: int = 0
    size: int = 0


class PredictionKey(SQLModel, table=True):
    """Where one production prediction's row lives (file and position), and its label once it
    arrives; the raw row itself is in the batch's Parquet file."""

    __tablename__ = "prediction_key"
    model_id: int = Field(primary_key=True)
    environment: str = Field(primary_key=True, max_length=40)
    prediction_id: str = Field(primary_key=True, max_length=120)
    file_id: int = Field(index=True)
    row: int
    label: str | None = Field(default=None, max_length=120)
    label_batch_id: int | None = Field(default=None, index=True)


class WindowAggregateRow(SQLModel, table=True):
    """Per-window counts of one model version in one environment, merged at every ingest."""

    __tablename__ = "window_aggregate"
    __table_args__ = (
        UniqueConstraint("model_id", "version_id", "environment", "window_start", name="uq_window"),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    version_id: int = Field(foreign_key="model_version.id")
    environment: str = Field(max_length=40)
    window_start: datetime
    n_rows: int = 0
    external_rows: int = 0
    data: dict[str, Any] = json_column()
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    row_version: int = Field(default=1)


class Alert(SQLModel, table=True):
    """An incident: one kind of threshold crossed by a model in an environment, open from its
    first window in breach until it clears, is resolved, or is superseded."""

    __table_args__ = (
        Index("ix_alert_model_status", "model_id", "status"),
        Index(
            "uq_open_incident",
            "model_id",
            "environment",
            "kind",
            "basis",
            unique=True,
            sqlite_where=text("status IN ('open', 'acknowledged')"),
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id")
    version_id: int = Field(foreign_key="model_version.id")
    environment: str = Field(max_length=40)
    window_start: datetime
    kind: str = Field(max_length=20)
    metric: str = Field(max_length=120)
    value: float | None = None
    threshold: float | None = None
    message: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolved_by_id: int | None = Field(default=None, foreign_key="user.id")
    basis: str = Field(default="", max_length=20)
    last_window: datetime | None = None
    windows_in_breach: int = Field(default=1)
    worst_value: float | None = None
    closed_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    superseded_by_id: int | None = Field(default=None, foreign_key="alert.id")
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class RetrainingTask(SQLModel, table=True):
    """Work to retrain a model after drift or degradation; done when a candidate is registered."""

    __tablename__ = "retraining_task"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    version_id: int = Field(foreign_key="model_version.id")
    alert_id: int | None = Field(default=None, foreign_key="alert.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=20)
    result_version_id: int | None = Field(default=None, foreign_key="model_version.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StoredComparison(SQLModel, table=True):
    """A candidate and its champion scored on the same data, computed once (never while a page
    draws) and found again by the hash of both artifacts and the data."""

    __tablename__ = "comparison"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    candidate_id: int = Field(foreign_key="model_version.id", index=True)
    champion_id: int = Field(foreign_key="model_version.id")
    data: str = Field(max_length=20)  # "evaluation" (the candidate's file) or "production"
    content_hash: str = Field(max_length=64, unique=True)
    n_rows: int = 0
    data_from: datetime | None = None
    data_to: datetime | None = None
    result: dict[str, Any] = json_column()
    created_at: datetime = Field(default_factory=utcnow)


class AllowedPattern(SQLModel, table=True):
    """A regular expression an admin allowed, exactly as written, in uploaded models."""

    __tablename__ = "allowed_pattern"
    id: int | None = Field(default=None, primary_key=True)
    pattern: str = Field(max_length=500, unique=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    allowed_by_id: int | None = Field(default=None, foreign_key="user.id")
    allowed_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = Field(default=None)


class Finding(SQLModel, table=True):
    """A validation finding on a version: what is wrong, how bad, who fixes it by when."""

    __table_args__ = (Index("ix_finding_model_status", "model_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id")
    version_id: int = Field(foreign_key="model_version.id", index=True)
    severity: str = Field(max_length=10)
    text: str = Field(sa_column=Column(Text, nullable=False))
    anchor: str = Field(default="", max_length=120)
    owner_id: int = Field(foreign_key="user.id", index=True)
    raised_by_id: int = Field(foreign_key="user.id")
    due_on: date
    status: str = Field(default="open", max_length=20)  # open, answered, closed
    source: str = Field(default="review", max_length=20)  # review, revalidation
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    last_reminded_on: date | None = None
    row_version: int = Field(default=1)


class FindingEvent(SQLModel, table=True):
    """One step in a finding's life: raised, answered (with evidence), closed, re-opened."""

    __tablename__ = "finding_event"
    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="finding.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="user.id")
    action: str = Field(max_length=30)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    status_after: str = Field(max_length=20)
    evidence_key: str | None = Field(default=None, max_length=200)
    evidence_sha256: str | None = Field(default=None, max_length=64)
    filename: str = Field(default="", max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class Revalidation(SQLModel, table=True):
    """A periodic revalidation of a live version: one review round with its own decisions."""

    __table_args__ = (
        UniqueConstraint("version_id", "review_round", name="uq_revalidation_round"),
        Index(
            "uq_one_open_revalidation",
            "version_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="ml_model.id", index=True)
    version_id: int = Field(foreign_key="model_version.id")
    review_round: int
    prior_round: int
    status: str = Field(default="open", max_length=20)  # open, passed, failed
    reason: str = Field(default="", max_length=500)
    started_by_id: int = Field(foreign_key="user.id")
    started_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    finding_id: int | None = Field(default=None, foreign_key="finding.id")


class RevalidationNotice(SQLModel, table=True):
    """That the people of a live version were told its revalidation is near or due (once)."""

    __tablename__ = "revalidation_notice"
    __table_args__ = (
        UniqueConstraint("version_id", "due_on", "stage", name="uq_revalidation_notice"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id")
    due_on: date
    stage: str = Field(max_length=20)  # ahead, due
    created_at: datetime = Field(default_factory=utcnow)


class NotificationPreference(SQLModel, table=True):
    """Whether one person also hears of one kind of event by e-mail (the inbox always gets it)."""

    __tablename__ = "notification_preference"
    __table_args__ = (UniqueConstraint("user_id", "event", name="uq_notification_preference"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    event: str = Field(max_length=40)
    email: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookHost(SQLModel, table=True):
    """A host an admin allowed as a webhook target; private addresses only when said so."""

    __tablename__ = "webhook_host"
    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=253, unique=True)
    allow_private: bool = False
    reason: str = Field(default="", max_length=500)
    allowed_by_id: int | None = Field(default=None, foreign_key="user.id")
    allowed_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = Field(default=None)


class Webhook(SQLModel, table=True):
    """A team's outgoing webhook: events of that team's models, signed with its own secret."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    name: str = Field(max_length=80)
    url: str = Field(max_length=500)
    events: list[str] = json_list_column()
    salt: str = Field(max_length=64)  # the secret is derived from it and the server's key
    created_by_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = Field(default=None)


class Delivery(SQLModel, table=True):
    """One message to send by e-mail or webhook (the outbox), written with its inbox item."""

    __table_args__ = (Index("ix_delivery_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=20)  # email, webhook
    event: str = Field(max_length=40)
    kind: str = Field(max_length=40)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    webhook_id: int | None = Field(default=None, foreign_key="webhook.id")
    notification_id: int | None = Field(default=None, foreign_key="notification.id")
    model_id: int | None = Field(default=None, foreign_key="ml_model.id")
    subject: str = Field(max_length=200)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=20)  # pending, sent, failed
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(default=None)


class DeliveryAttempt(SQLModel, table=True):
    """One try at sending a delivery: when, and what the receiver or the network said."""

    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    attempted_at: datetime = Field(default_factory=utcnow)
    ok: bool = False
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
