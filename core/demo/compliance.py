"""Demo compliance work: checklists filled partly and fully, sign-offs, one expired, one revoked.

Runs after the demo models and reviews exist; idempotent (does nothing once sign-offs exist).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from core.auth import OPERATOR
from core.db import Database
from core.models import MLModel, Signoff, utcnow
from core.services import compliance, reviews, users

CREDIT, BIKE, TUMOUR = (
    "credit-default-scorer",
    "bike-demand-forecaster",
    "tumour-benchmark-classifier",
)
EVIDENCE_REFERENCES = {
    "evaluation": "v{n} evaluation on the held-out set",
    "fairness": "v{n} fairness table by the sensitive column",
    "drift_report": "monitoring drift report of v{n}",
    "review_thread": "v{n} review thread",
    "model_card": "model card of {model}",
}
NOT_APPLICABLE = {
    "bike-demand-forecaster": {
        "fairness_reviewed": "Forecasts station demand; no decision is made about people.",
    },
}
POLICY_CHECKLISTS = ["eu_ai_act_high_risk", "internal_policy"]
POLICY_SIGNOFFS = ["validated", "approved for production"]


def seed_compliance(db: Database) -> list[str]:
    created = [f"checklist template {k}" for k in compliance.sync_templates(db)]
    with db.read() as session:
        if session.exec(select(Signoff).limit(1)).first() is not None:
            return created
        names = set(session.exec(select(MLModel.name)).all())
    if not {CREDIT, BIKE, TUMOUR} <= names:
        return created
    casey = users.principal_by_email(db, "casey@demo.quorum")
    blake = users.principal_by_email(db, "blake@demo.quorum")
    riley = users.principal_by_email(db, "riley@demo.quorum")
    _policy(db)

    for key in ("internal_policy", "sr_11_7", "eu_ai_act_high_risk", "iso_42001", "nist_ai_rmf"):
        _fill(db, casey, CREDIT, 2, key, share=1.0, owner=riley.user_id)
    compliance.sign(db, riley, CREDIT, 2, "validated", "Riley Reviewer")
    compliance.sign(db, casey, CREDIT, 2, "approved for production", "Casey Compliance", 365)
    compliance.sign(db, blake, CREDIT, 2, "business accepted", "Blake Business", 20)

    _fill(db, casey, CREDIT, 3, "internal_policy", share=0.6, owner=riley.user_id)
    _fill(db, casey, CREDIT, 3, "eu_ai_act_high_risk", share=0.4, owner=riley.user_id)
    wrong = compliance.sign(db, blake, CREDIT, 3, "business accepted", "Blake Business")
    compliance.revoke(
        db, blake, wrong.id or 0, "Signed before the south-region recall question was answered."
    )

    for number in (1, 2):
        for key in ("internal_policy", "nist_ai_rmf"):
            _fill(db, casey, BIKE, number, key, share=1.0, owner=riley.user_id)
    expired = compliance.sign(db, riley, BIKE, 1, "validated", "Riley Reviewer", 365)
    _backdate(db, expired.id or 0, days=400)
    compliance.sign(db, riley, BIKE, 2, "validated", "Riley Reviewer", 365)
    compliance.sign(db, blake, BIKE, 2, "business accepted", "Blake Business")
    _fill(db, casey, BIKE, 3, "internal_policy", share=0.5, owner=riley.user_id)

    _fill(db, casey, TUMOUR, 2, "internal_policy", share=0.3, owner=None)
    compliance.remind_expiring(db)
    return [*created, "checklists, evidence and sign-offs (one expired, one revoked)"]


def _policy(db: Database) -> None:
    with db.read() as session:
        policy = reviews.policy_for(session, "high")
    reviews.update_policy(  # the demo seed is an operator action: no second admin needed
        db,
        OPERATOR,
        "high",
        required_checklists=POLICY_CHECKLISTS,
        required_signoffs=POLICY_SIGNOFFS,
        row_version=policy.row_version,
        reason="High-risk models need the EU AI Act and internal checklists and two sign-offs.",
    )


def _fill(
    db: Database,
    actor: users.Principal,
    model: str,
    number: int,
    template_key: str,
    *,
    share: float,
    owner: int | None,
) -> None:
    lists = {c.key: c for c in compliance.checklists(db, actor, model, number)}
    checklist = lists.get(template_key)
    if checklist is None:
        return
    done = round(len(checklist.items) * share)
    for index, item in enumerate(checklist.items):
        if index >= done:
            if owner is not None:
                compliance.update_item(
                    db, actor, model, number, template_key, item.key, status="open",
                    owner_id=owner, notes="Waiting for the model owner.",
                    row_version=item.row_version,
                )  # fmt: skip
            continue
        reason = NOT_APPLICABLE.get(model, {}).get(item.key, "")
        hint = item.evidence_hint
        if not reason and hint != "document":
            reference = EVIDENCE_REFERENCES[hint].format(n=number, model=model)
            compliance.add_evidence(
                db, actor, model, number, template_key, item.key, kind=hint, reference=reference
            )
        elif not reason:
            compliance.add_evidence(
                db, actor, model, number, template_key, item.key, kind="document",
                document=f"{item.title}\n\nRecord for {model} v{number}.\n".encode(),
                filename=f"{item.key}.txt",
            )  # fmt: skip
        current = item.row_version or (0 if reason else 1)
        compliance.update_item(
            db, actor, model, number, template_key, item.key,
            status="not_applicable" if reason else "met", na_reason=reason,
            owner_id=owner, notes="Checked against the linked evidence.", row_version=current,
        )  # fmt: skip


def _backdate(db: Database, signoff_id: int, *, days: int) -> None:
    """Demo history: move a signature into the past so that it has already expired."""
    with db.write() as session:
        row = session.get(Signoff, signoff_id)
        assert row is not None and row.expires_at is not None
        shift = timedelta(days=days)
        row.signed_at, row.expires_at = row.signed_at - shift, row.expires_at - shift
        if row.expires_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None):
            row.expires_at = utcnow() - timedelta(days=1)
        session.add(row)
