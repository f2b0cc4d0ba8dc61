"""The approval pack's content: everything it states, gathered from the store for one version.

`build_pack` reads (read permission checked) and returns a `PackData`; the renderer in
core/reports.py only draws it. Every statement is about the version the pack describes: its own
live status, decisions, sign-offs, gate, goal, incidents, checklists and audit events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core import audit, audit_anchor, evaluation, policy
from core.artifacts import ArtifactStore
from core.auth import Principal
from core.config import get_settings
from core.db import Database
from core.errors import QuorumError
from core.models import (
    Alert,
    ChecklistItem,
    Comment,
    Decision,
    DecisionKind,
    Deployment,
    Evidence,
    MLModel,
    ModelVersion,
    Signoff,
    Team,
    User,
    WindowAggregateRow,
    utcnow,
)
from core.packdata import (
    AuditRow,
    CardSection,
    ChecklistFacts,
    ComparisonFacts,
    DecisionRow,
    DeploymentRow,
    EvidenceRow,
    FindingRow,
    IncidentRow,
    ItemRow,
    LiveStatus,
    PackData,
    PolicyChange,
    PolicyFacts,
    PolicyVersionFacts,
    SignatureRow,
    Statement,
    Verdict,
)
from core.services import read_as
from core.services.compliance.checklists import evidence_hash, version_checklists
from core.services.compliance.common import STATUS_LABELS
from core.services.compliance.gate import card_link, production_gate, signer_view
from core.services.compliance.pack_charts import draw_charts
from core.services.compliance.signoffs import signoff_views
from core.services.registry import CARD_SECTIONS, get_model, get_version, state_label
from core.services.reviews import (
    PolicyInForce,
    decisions_of,
    policy_by_id,
    policy_for,
    policy_versions,
)
from core.services.versions import evaluation_of

AUDIT_EXCERPT = 200
PRODUCTION = "production"
ENVIRONMENTS = ("staging", PRODUCTION)
OPEN_INCIDENT = ("open", "acknowledged")

Progress = Callable[[float, str], None]


def _utc(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def _quiet(_fraction: float, _text: str) -> None:
    return None


def assemble_pack(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    *,
    generated_by: str = "",
    store: ArtifactStore | None = None,
    progress: Progress | None = None,
) -> PackData:
    """The pack of a version with its champion comparison and charts (the comparison scores the
    champion in its sandbox, so it needs the database rather than one session)."""
    step = progress or _quiet
    step(0.05, "Comparing with the champion")
    comparison, champion_result = _comparison(db, actor, model_name, number, store)
    step(0.45, "Gathering decisions, sign-offs, checklists and the audit trail")
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        data = build_pack(
            session, actor, model, version, generated_by=generated_by, comparison=comparison
        )
        ev = evaluation_of(session, version.id or 0)
        result = ev.result if ev else {}
    step(0.6, "Drawing the charts")
    champion_number = comparison.champion if comparison.available else None
    charts = draw_charts(result, champion_result, number, champion_number)
    return _with_charts(data, charts)


def _with_charts(data: PackData, charts: list[Any]) -> PackData:
    from dataclasses import replace

    return replace(data, charts=charts)


def build_pack(
    session: Session,
    actor: Principal,
    model: MLModel,
    version: ModelVersion,
    *,
    generated_by: str = "",
    comparison: ComparisonFacts | None = None,
) -> PackData:
    """What the pack of `version` states; the actor must be able to read the model."""
    model = get_model(session, actor, model.name)  # another team's model answers as absent
    version = get_version(session, model, version.number)
    names = {u.id: u.name for u in session.exec(select(User))}
    team = session.get(Team, model.team_id)
    rule = policy_for(session, model.risk_tier)
    ev = evaluation_of(session, version.id or 0)
    result = ev.result if ev else {}
    decisions = decisions_of(session, version.id or 0)
    signatures = _signoffs(session, model, version)
    gate = _gate(session, model, version)
    checklists = _checklists(session, model, version)
    card = _card(model, rule)
    incidents = _incidents(session, version)
    live = _live(session, version)
    findings = _findings(session, actor, version)
    revalidation = _revalidation(session, actor, version)
    outside = _outside(session, version)
    comparison = comparison or ComparisonFacts(False, "No comparison was made.")
    verdict = Verdict(
        goal=_goal_statement(model, result, ev is not None),
        live=live,
        approvals=_approvals(version, decisions, rule, names),
        signatures=_signature_statement(signatures),
        gate=Statement(
            "The production gate is open: nothing the approval policy requires is missing."
            if not gate
            else f"The production gate is closed: {len(gate)} requirement"
            f"{'s' if len(gate) != 1 else ''} of the {rule.label} missing.",
            not gate,
        ),
        checklists=_checklist_statement(checklists),
        incidents=_incident_statement(version, incidents, live),
        card=_card_statement(model, card),
        open_risks=_open_risks(incidents, gate)
        + [
            Statement(
                f"Open {f.severity} finding #{f.id} ({f.owner}, due {f.due_on}): {f.text}", False
            )
            for f in findings
            if f.status != "closed"
        ]
        + ([revalidation] if revalidation is not None and revalidation.ok is False else []),
    )
    return PackData(
        title=f"Approval pack: {model.name} v{version.number}",
        generated_at_utc=_utc(utcnow()),
        generated_by=generated_by,
        model={
            "Name": model.name,
            "Team": team.name if team else "?",
            "Owner": names.get(model.owner_id, "?"),
            "Risk tier": model.risk_tier,
            "Task": model.task.replace("_", " "),
            "Goal": _goal(model),
            "Tags": ", ".join(f"{k}={v}" for k, v in dict(model.tags).items()),
        },
        version={
            "Number": f"v{version.number}",
            "State": state_label(version.state),
            "Estimator": version.estimator_class,
            "Format": version.artifact_format,
            "Artifact SHA-256": version.artifact_sha256,
            "Registered by": names.get(version.registered_by_id, "?"),
            "Registered (UTC)": _utc(version.created_at),
            "Notes": version.notes,
            "Code reference": version.code_ref,
        },
        verdict=verdict,
        card=card,
        evaluation=_evaluation(ev, result),
        fairness=_fairness(result),
        comparison=comparison,
        checklists=checklists,
        evidence_sha256=evidence_hash(session, version),
        decisions=[
            DecisionRow(
                reviewer=names.get(d.reviewer_id, "?"),
                decision=d.kind.replace("_", " "),
                round=d.review_round,
                roles=", ".join(r.replace("_", " ") for r in d.roles),
                at_utc=_utc(d.created_at),
                reason=d.reason,
                artifact_sha256=d.artifact_sha256,
                policy=policy_by_id(session, d.policy_version_id, model.risk_tier).label,
            )
            for d in decisions
        ],
        signoffs=signatures,
        policy=_policy(session, model, names),
        gate=gate,
        deployments=_deployments(session, version, names),
        incidents=incidents,
        audit=_audit(session, model, version),
        audit_verification=_verification(session),
        findings=findings,
        revalidation=revalidation,
        outside=outside,
    )


# --- statements -----------------------------------------------------------------------------


def _goal(model: MLModel) -> str:
    if not model.goal_metric:
        return ""
    label = evaluation.METRIC_LABELS.get(model.goal_metric, model.goal_metric)
    text = f"{label} {model.goal_operator} {model.goal_target}"
    return text + (f" ({model.goal_description})" if model.goal_description else "")


def _goal_statement(model: MLModel, result: dict[str, Any], evaluated: bool) -> Statement:
    if not model.goal_metric or model.goal_target is None:
        return Statement("No business goal is set for this model.", None)
    if not evaluated:
        return Statement("This version has no evaluation, so whether it meets the goal is unknown.")
    metrics = result.get("metrics") or {}
    met = evaluation.goal_met(metrics, model.goal_metric, model.goal_operator, model.goal_target)
    value = metrics.get(model.goal_metric)
    words = evaluation.describe_goal(
        model.goal_metric, model.goal_operator, model.goal_target, value
    )
    return Statement(f"On its evaluation data: {words}", met)


def _live(session: Session, version: ModelVersion) -> list[LiveStatus]:
    rows = list(
        session.exec(
            select(Deployment)
            .where(Deployment.version_id == version.id)
            .order_by(col(Deployment.live_from), col(Deployment.id))
        )
    )
    environments = list(ENVIRONMENTS) + sorted({d.environment for d in rows} - set(ENVIRONMENTS))
    statuses = []
    for env in environments:
        mine = [d for d in rows if d.environment == env]
        now = next((d for d in mine if d.live_until is None), None)
        name = f"v{version.number}"
        if now is not None:
            statuses.append(
                LiveStatus(env, "live", f"{name} is live in {env} since {_utc(now.live_from)}.")
            )
        elif mine:
            last = mine[-1]
            statuses.append(
                LiveStatus(
                    env,
                    "was live",
                    f"{name} is not live in {env}; it was live there from "
                    f"{_utc(mine[0].live_from)} until {_utc(last.live_until)}.",
                )
            )
        elif env in ENVIRONMENTS:
            statuses.append(LiveStatus(env, "never", f"{name} has never been live in {env}."))
    return statuses


def _approvals(
    version: ModelVersion,
    decisions: list[Decision],
    rule: PolicyInForce,
    names: dict[int | None, str],
) -> Statement:
    if not decisions:
        return Statement(f"v{version.number} has no review decisions.", False)
    latest = max(d.review_round for d in decisions)
    round_ = [d for d in decisions if d.review_round == latest]
    approvals = [d for d in round_ if d.kind == DecisionKind.APPROVE]
    blocking = [d for d in round_ if d.kind != DecisionKind.APPROVE]
    needed = rule.min_approvals
    who = ", ".join(names.get(d.reviewer_id, "?") for d in approvals) or "nobody"
    text = (
        f"Review round {latest} of v{version.number}: {len(approvals)} approval"
        f"{'s' if len(approvals) != 1 else ''} ({who}); the {rule.label} needs {needed}."
    )
    if blocking:
        text += (
            " "
            + "; ".join(
                f"{names.get(d.reviewer_id, '?')} chose {d.kind.replace('_', ' ')}"
                for d in blocking
            )
            + "."
        )
    return Statement(text, len(approvals) >= needed and not blocking)


def _signature_statement(rows: list[SignatureRow]) -> Statement:
    signed = [r for r in rows if r.kind == "signature"]
    if not signed:
        return Statement("No one has signed this version.", None)
    valid = [r for r in signed if r.status == "valid"]
    return Statement(
        f"{len(valid)} of {len(signed)} signatures on this version count "
        "(not expired, revoked, superseded or stale).",
        len(valid) == len(signed),
    )


def _checklist_statement(lists: list[ChecklistFacts]) -> Statement:
    if not lists:
        return Statement("No checklist applies to this version.", None)
    parts = [
        f"{c.name}: " + ("complete" if c.complete else f"{c.required_open} required items open")
        for c in lists
    ]
    return Statement("; ".join(parts) + ".", all(c.complete for c in lists))


def _incident_statement(
    version: ModelVersion, incidents: list[IncidentRow], live: list[LiveStatus]
) -> Statement:
    ever_live = any(s.status != "never" for s in live)
    open_ = [i for i in incidents if i.status in OPEN_INCIDENT]
    if not ever_live and not incidents:
        return Statement(
            f"v{version.number} has never been live, so it has no monitoring incidents.", None
        )
    if not incidents:
        return Statement(f"No monitoring incident was recorded for v{version.number}.", True)
    kinds = sorted({i.kind for i in open_})
    return Statement(
        f"{len(incidents)} monitoring incident{'s' if len(incidents) != 1 else ''} recorded for "
        f"v{version.number}, {len(open_)} open" + (f" ({', '.join(kinds)})" if kinds else "") + ".",
        not open_,
    )


def _card(model: MLModel, rule: PolicyInForce) -> list[CardSection]:
    required = set(rule.fields.required_card_sections)
    return [
        CardSection(
            key=key,
            title=key.replace("_", " ").capitalize(),
            text=str(model.model_card.get(key) or ""),
            required=key in required,
        )
        for key in CARD_SECTIONS
    ]


def _card_statement(model: MLModel, card: list[CardSection]) -> Statement:
    gaps = [s for s in card if s.required and s.empty]
    if gaps:
        return Statement(
            f"The {model.risk_tier}-risk policy requires model-card sections that are empty: "
            + ", ".join(s.title.lower() for s in gaps)
            + ".",
            False,
            card_link(model.name),
        )
    empty = [s for s in card if s.empty]
    if empty:
        return Statement(
            "Model-card sections not written (not required by the policy): "
            + ", ".join(s.title.lower() for s in empty)
            + ".",
            None,
            card_link(model.name),
        )
    return Statement("Every model-card section is written.", True)


def _open_risks(incidents: list[IncidentRow], gate: list[Statement]) -> list[Statement]:
    """What stands between this version and production, and what is wrong with it in use."""
    risks = [Statement(g.text, False, g.link) for g in gate]
    risks += [
        Statement(f"Open {i.kind} incident in {i.environment}: {i.message}", False)
        for i in incidents
        if i.status in OPEN_INCIDENT
    ]
    return risks


def _findings(session: Session, actor: Principal, version: ModelVersion) -> list[FindingRow]:
    """Every finding raised on this version, with its history."""
    from core.services.findings import findings_for_pack

    return [
        FindingRow(
            id=f["id"],
            severity=f["severity"],
            status=f["status"],
            owner=f["owner"],
            raised_by=f["raised_by"],
            due_on=f["due_on"],
            text=f["text"],
            history="; ".join(
                f"{e['action']} by {e['actor']}"
                + (f" at {e['at'][:16].replace('T', ' ')} UTC" if e.get("at") else "")
                + (f": {e['note']}" if e.get("note") else "")
                for e in f["history"]
            ),
        )
        for f in findings_for_pack(session, actor, version.id or 0)
    ]


def _revalidation(session: Session, actor: Principal, version: ModelVersion) -> Statement | None:
    """Where this version stands on periodic revalidation, once it has been live in production."""
    from core.services.revalidation import revalidation_for_pack

    status = revalidation_for_pack(session, actor, version.id or 0)
    if status is None or not status["live_in_production"]:
        return None
    text = f"v{version.number}: {status['label']}"
    if status["interval_months"]:
        text += (
            f" (every {status['interval_months']} months; last validated {status['validated_on']})"
        )
    failed_or_late = status["failed"] or status["overdue"]
    return Statement(text + ".", False if failed_or_late else True)


def _outside(session: Session, version: ModelVersion) -> Statement | None:
    """Whether some of this version's production windows were aggregated outside Quorum."""
    rows = session.exec(
        select(WindowAggregateRow.window_start, WindowAggregateRow.external_rows).where(
            WindowAggregateRow.version_id == version.id, col(WindowAggregateRow.external_rows) > 0
        )
    ).all()
    if not rows:
        return None
    days = sorted(r[0] for r in rows)
    total = sum(int(r[1]) for r in rows)
    return Statement(
        f"{len(days)} monitoring window(s) of v{version.number} ({days[0]:%Y-%m-%d} to "
        f"{days[-1]:%Y-%m-%d}, {total:,} rows) were aggregated outside Quorum: Quorum received "
        "their counts, not their rows.",
        None,
    )


def _gate(session: Session, model: MLModel, version: ModelVersion) -> list[Statement]:
    link = card_link(model.name)
    return [
        Statement(text, False, link if text.startswith("model card section") else "")
        for text in production_gate(session, model, version)
    ]


# --- sections -------------------------------------------------------------------------------


def _evaluation(ev: Any, result: dict[str, Any]) -> dict[str, Any]:
    if ev is None:
        return {"available": False}
    return {
        "available": True,
        "dataset": ev.dataset_filename,
        "dataset_sha256": ev.dataset_sha256,
        "rows": ev.n_rows,
        "metrics": {
            evaluation.METRIC_LABELS.get(k, k): _number(v)
            for k, v in (result.get("metrics") or {}).items()
        },
    }


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _fairness(result: dict[str, Any]) -> dict[str, Any]:
    slices = result.get("slices") or []
    summary = result.get("fairness") or {}
    return {
        "sensitive": str(summary.get("sensitive", "")),
        "summary": {
            k.replace("_", " "): _number(v) for k, v in summary.items() if k != "sensitive"
        },
        "slices": [
            {
                "group": str(s["group"]),
                "rows": str(s["n"]),
                **{evaluation.METRIC_LABELS.get(k, k): _number(v) for k, v in s["metrics"].items()},
                **(
                    {"Selection rate": _number(s.get("selection_rate"))}
                    if "selection_rate" in s
                    else {}
                ),
            }
            for s in slices
        ],
    }


def _checklists(session: Session, model: MLModel, version: ModelVersion) -> list[ChecklistFacts]:
    return [
        ChecklistFacts(
            key=c.key,
            name=c.name,
            version=c.version,
            complete=c.complete,
            required_open=len(c.required_open),
            items=[
                ItemRow(
                    section=i.section,
                    title=i.title,
                    required=i.required,
                    status=STATUS_LABELS[i.status],
                    owner=i.owner,
                    notes=i.notes,
                    na_reason=i.na_reason,
                    evidence=[
                        EvidenceRow(
                            kind=e.kind.replace("_", " "),
                            reference=e.reference,
                            sha256=e.document_sha256 or "",
                            added_by=e.added_by,
                            at_utc=_utc(e.created_at),
                        )
                        for e in i.evidence
                    ],
                )
                for i in c.items
            ],
        )
        for c in version_checklists(session, model, version)
    ]


def _policy(session: Session, model: MLModel, names: dict[int | None, str]) -> PolicyFacts:
    """The policy in force now, field by field, and every version of it with what changed."""
    versions = policy_versions(session, model.risk_tier)
    current = versions[-1]
    history = [
        PolicyVersionFacts(
            version=after.version,
            at_utc=_utc(after.created_at),
            by=names.get(after.created_by_id, "?"),
            confirmed_by=names.get(after.confirmed_by_id, "") if after.confirmed_by_id else "",
            reason=after.reason,
            changes=[
                PolicyChange(
                    spec.label,
                    policy.describe(getattr(before.fields, spec.name), spec),
                    policy.describe(getattr(after.fields, spec.name), spec),
                )
                for spec in policy.FIELDS
                if getattr(before.fields, spec.name) != getattr(after.fields, spec.name)
            ],
        )
        for before, after in zip(versions, versions[1:], strict=False)
    ]
    return PolicyFacts(
        in_force=current.label,
        fields={
            spec.label: policy.describe(getattr(current.fields, spec.name), spec)
            for spec in policy.FIELDS
        },
        history=history,
    )


def _signoffs(session: Session, model: MLModel, version: ModelVersion) -> list[SignatureRow]:
    rows = []
    for view in signoff_views(session, version):
        judged = policy_by_id(session, view.signoff.policy_version_id, model.risk_tier).label
        rows.append(_signature(signer_view(view.signoff), view.status, view.problem, judged))
        if view.revocation is not None:
            rows.append(_signature(signer_view(view.revocation), "revocation", "", judged))
    return rows


def _signature(entry: dict[str, Any], status: str, problem: str, judged: str) -> SignatureRow:
    return SignatureRow(
        kind=entry["kind"],
        meaning=entry["meaning"],
        printed_name=entry["printed_name"],
        role=entry["role"].replace("_", " "),
        signed_at_utc=entry["signed_at_utc"],
        expires_at_utc=entry["expires_at_utc"],
        status=status,
        problem=problem,
        reason=entry["reason"],
        policy=judged,
        artifact_sha256=entry["artifact_sha256"],
        evidence_sha256=entry["evidence_sha256"],
    )


def _deployments(
    session: Session, version: ModelVersion, names: dict[int | None, str]
) -> list[DeploymentRow]:
    rows = session.exec(
        select(Deployment)
        .where(Deployment.version_id == version.id)
        .order_by(col(Deployment.live_from), col(Deployment.id))
    )
    return [
        DeploymentRow(
            environment=d.environment,
            action=d.action,
            actor=names.get(d.actor_id, "?"),
            live_from_utc=_utc(d.live_from),
            live_until_utc=_utc(d.live_until) or "now",
            reason=d.reason,
        )
        for d in rows
    ]


def _incidents(session: Session, version: ModelVersion) -> list[IncidentRow]:
    rows = session.exec(
        select(Alert).where(Alert.version_id == version.id).order_by(col(Alert.created_at))
    )
    return [
        IncidentRow(
            environment=a.environment,
            kind=a.kind,
            metric=a.metric,
            status=a.status,
            opened_utc=_utc(a.created_at),
            message=a.message,
        )
        for a in rows
    ]


def _audit(session: Session, model: MLModel, version: ModelVersion) -> list[AuditRow]:
    """The audit events about this version and what belongs to it, newest first."""
    vid = version.id
    ids = {
        "version": {vid},
        "signoff": set(session.exec(select(Signoff.id).where(Signoff.version_id == vid))),
        "deployment": set(session.exec(select(Deployment.id).where(Deployment.version_id == vid))),
        "comment": set(session.exec(select(Comment.id).where(Comment.version_id == vid))),
        "alert": set(session.exec(select(Alert.id).where(Alert.version_id == vid))),
        "checklist_item": set(
            session.exec(select(ChecklistItem.id).where(ChecklistItem.version_id == vid))
        ),
    }
    items = ids["checklist_item"]
    ids["evidence"] = (
        set(session.exec(select(Evidence.id).where(col(Evidence.item_id).in_(items))))
        if items
        else set()
    )
    wanted = {kind: {str(i) for i in found} for kind, found in ids.items()}
    rows = []
    for e in audit.query(session, audit.AuditFilter(model_id=model.id, limit=5000)):
        details = e.details or {}
        mine = e.object_id in wanted.get(e.object_type, set()) or details.get("version") in (
            version.number,
            f"v{version.number}",
        )
        if mine:
            rows.append(AuditRow(e.seq, _utc(e.created_at), e.actor_label, e.action, e.summary))
        if len(rows) >= AUDIT_EXCERPT:
            break
    return rows


def _verification(session: Session) -> Statement:
    chain = audit_anchor.verify(session, get_settings())
    return Statement(chain.message, chain.intact)


def _comparison(
    db: Database, actor: Principal, model_name: str, number: int, store: ArtifactStore | None
) -> tuple[ComparisonFacts, dict[str, Any] | None]:
    from core.services.compare import compare

    try:
        result = compare(db, actor, model_name, number, store=store)
    except QuorumError as error:
        return ComparisonFacts(False, error.user_message), None
    return (
        ComparisonFacts(
            available=True,
            candidate=result.candidate,
            champion=result.champion,
            basis=result.champion_basis,
            rows=[
                {
                    "Metric": evaluation.METRIC_LABELS.get(r["metric"], r["metric"])
                    if "metric" in r
                    else "",
                    f"v{result.candidate} (candidate)": _number(r.get("candidate")),
                    f"v{result.champion} (champion)": _number(r.get("champion")),
                    "In words": r.get("sentence", ""),
                }
                for r in result.rows
            ],
            goal_candidate=result.goal_candidate,
            goal_champion=result.goal_champion,
        ),
        result.champion_result,
    )
