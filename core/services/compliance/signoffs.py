"""Electronic sign-offs: signed, never edited, only superseded or revoked; expiry reminders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core import audit, validation
from core.artifacts import ArtifactStore, default_store
from core.auth import (
    ROLE_PERMISSIONS,
    SYSTEM,
    Permission,
    Principal,
    describe_roles,
    refresh,
    require,
    require_person,
    visible_teams,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, QuorumError
from core.models import (
    ROLE_LABELS,
    MLModel,
    ModelVersion,
    Notification,
    Role,
    Signoff,
    User,
    utcnow,
)
from core.services import read_as, unit_of_work
from core.services.compliance.checklists import evidence_hash
from core.services.compliance.common import (
    EXPIRY_NOTICE_DAYS,
    MAX_EXPIRY_DAYS,
    MEANINGS,
    REVOCATION,
    SIGNATURE,
)
from core.services.portfolio import notify
from core.services.registry import get_model, get_version, scoped
from core.services.reviews import PolicyInForce, policy_for

# --- sign-offs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignoffView:
    signoff: Signoff
    status: str  # valid, expired, revoked, superseded, stale
    problem: str
    revocation: Signoff | None = None

    @property
    def counts(self) -> bool:
        return self.status == "valid"

    @property
    def line(self) -> str:
        s = self.signoff
        return (
            f"{s.meaning} — signed by {s.printed_name} ({s.role.replace('_', ' ')}) on "
            f"{_utc(s.signed_at)}"
        )


def _utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _aware(when: datetime | None) -> datetime | None:
    from datetime import UTC

    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def signoff_views(
    session: Session, version: ModelVersion, *, now: datetime | None = None
) -> list[SignoffView]:
    """Every signature on the version, newest first, with whether it still counts and why not."""
    moment = now or utcnow()
    rows = list(
        session.exec(
            select(Signoff).where(Signoff.version_id == version.id).order_by(col(Signoff.id))
        )
    )
    revoked = {r.supersedes_id: r for r in rows if r.kind == REVOCATION}
    superseded = {r.supersedes_id for r in rows if r.kind == SIGNATURE and r.supersedes_id}
    current_evidence = evidence_hash(session, version)
    views = []
    for s in (r for r in rows if r.kind == SIGNATURE):
        status, problem = _signature_status(
            s, version, current_evidence, revoked, superseded, moment
        )
        views.append(SignoffView(s, status, problem, revoked.get(s.id)))
    return list(reversed(views))


def _signature_status(
    s: Signoff,
    version: ModelVersion,
    current_evidence: str,
    revoked: dict[int | None, Signoff],
    superseded: set[int],
    moment: datetime,
) -> tuple[str, str]:
    if s.id in revoked:
        r = revoked[s.id]
        return "revoked", f"revoked by {r.printed_name} on {_utc(r.signed_at)}: {r.reason}"
    if s.id in superseded:
        return "superseded", "replaced by a newer signature of the same meaning by the same person"
    expires = _aware(s.expires_at)
    if expires is not None and expires <= moment:
        return "expired", f"expired on {_utc(expires)}"
    if s.artifact_sha256 != version.artifact_sha256:
        return "stale", "the model file changed after signing"
    if s.evidence_sha256 != current_evidence:
        return "stale", "the checklist evidence or item states changed after signing"
    return "valid", ""


def signing_roles(
    current: Principal, team_id: int, judged: PolicyInForce, meaning: str
) -> list[str]:
    """The roles the principal holds in the team that the policy lets sign `meaning`."""
    held = {r.value for r in current.roles(team_id)}
    return sorted(held & set(judged.fields.roles_for(meaning)))


def _role_to_sign(current: Principal, model: MLModel, judged: PolicyInForce, meaning: str) -> str:
    roles = signing_roles(current, model.team_id, judged, meaning)
    if roles:
        return roles[0]
    allowed = judged.fields.roles_for(meaning)
    who = " or ".join(ROLE_LABELS[Role(r)].lower() for r in allowed) or "nobody"
    raise PermissionDenied(
        f"You do not have permission to sign '{meaning}' for {model.name}: the "
        f"{judged.label} lets only a {who} sign it. Ask an admin to grant you such a role "
        "in this team, or ask someone who holds one.",
        details=[f"your roles: {describe_roles(current.grants) or 'none'}"],
        permission=Permission.SIGN_OFF.name,
        attempt=f"sign '{meaning}' for {model.name}",
        model_id=model.id,
    )


def _signing_role(current: Principal, team_id: int) -> str:
    roles = sorted(
        r.value for r in current.roles(team_id) if Permission.SIGN_OFF in ROLE_PERMISSIONS[r]
    )
    non_admin = [r for r in roles if r != "admin"]
    return (non_admin or roles or ["?"])[0]


def _verify_artifact(version: ModelVersion, store: ArtifactStore) -> None:
    try:
        store.get(version.artifact_key, sha256=version.artifact_sha256)
    except QuorumError as error:
        raise InvalidInput(
            f"Sign-off refused: the stored model file of v{version.number} no longer matches "
            "the SHA-256 recorded at registration, so there is nothing trustworthy to sign. "
            "Ask an admin to investigate; register the model again if the file was replaced.",
            details=[error.user_message],
        ) from error


def sign(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    meaning: str,
    typed_name: str,
    expires_days: int | None = None,
    *,
    store: ArtifactStore | None = None,
) -> Signoff:
    """An electronic signature bound to the version's artifact and evidence hashes."""
    if meaning not in MEANINGS:
        raise InvalidInput(
            f"{meaning!r} is not a sign-off meaning; use one of: {', '.join(MEANINGS)}."
        )
    typed = validation.plain_text(typed_name, "typed full name", max_length=120, required=True)
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"Expiry must be between 1 and {MAX_EXPIRY_DAYS} days from today.")
    with unit_of_work(db, actor) as session:
        model = get_model(session, actor, model_name)
        require_person(
            session, actor, Permission.SIGN_OFF, f"of {model.name} v{number}", model_id=model.id
        )
        current = refresh(session, actor)
        version = get_version(session, model, number)
        judged = policy_for(session, model.risk_tier)
        role = _role_to_sign(current, model, judged, meaning)
        if version.registered_by_id == actor.user_id:
            raise InvalidInput(
                f"Sign-off refused: you registered v{version.number} of {model.name}, so you "
                "cannot sign it (separation of duties). Ask someone else who may sign "
                f"'{meaning}'."
            )
        user = session.get(User, actor.user_id)
        if (
            user is None
            or " ".join(typed.split()).casefold() != " ".join(user.name.split()).casefold()
        ):
            raise InvalidInput(
                "Sign-off refused: the name you typed does not match your full name as Quorum "
                "holds it. Type your full name exactly as shown on your profile to confirm."
            )
        _verify_artifact(version, store or default_store())
        evidence = evidence_hash(session, version)
        earlier = [
            v
            for v in signoff_views(session, version)
            if v.signoff.signer_id == actor.user_id and v.signoff.meaning == meaning
        ]
        # a signature counts for its review round: a revalidation round is signed anew
        _refuse_replay(
            [v for v in earlier if v.signoff.review_round == version.review_round],
            version,
            evidence,
        )
        now = utcnow()
        previous = next((v for v in earlier if v.status not in ("revoked", "superseded")), None)
        signoff = Signoff(
            version_id=version.id or 0,
            kind=SIGNATURE,
            meaning=meaning,
            signer_id=actor.user_id,
            printed_name=user.name,
            role=role,
            artifact_sha256=version.artifact_sha256,
            evidence_sha256=evidence,
            policy_version_id=judged.version_id,
            review_round=version.review_round,
            signed_at=now,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
            supersedes_id=previous.signoff.id if previous else None,
        )
        session.add(signoff)
        session.flush()
        audit.record(
            session,
            actor,
            "signoff.signed",
            object_type="signoff",
            object_id=signoff.id,
            model_id=model.id,
            summary=f"{user.name} signed {model.name} v{version.number} as '{meaning}'"
            + (f", valid until {_utc(signoff.expires_at)}" if signoff.expires_at else "")
            + (f" (replaces signature #{signoff.supersedes_id})" if previous else ""),
            details={
                "printed_name": user.name,
                "role": signoff.role,
                "meaning": meaning,
                "artifact_sha256": version.artifact_sha256,
                "evidence_sha256": evidence,
                "signed_at": signoff.signed_at.isoformat(),
                "policy_version": judged.version,
                "policy_version_id": judged.version_id,
                "review_round": version.review_round,
            },
        )
        return signoff


def _refuse_replay(earlier: list[SignoffView], version: ModelVersion, evidence: str) -> None:
    for view in earlier:
        s = view.signoff
        same = s.artifact_sha256 == version.artifact_sha256 and s.evidence_sha256 == evidence
        if same and view.counts:
            raise Conflict(
                f"Sign-off refused: you already signed v{version.number} as '{s.meaning}' on "
                f"{_utc(s.signed_at)} for these same files and evidence, and that signature "
                "still counts. Nothing to sign again."
            )


def revoke(db: Database, actor: Principal, signoff_id: int, reason: str) -> Signoff:
    """Revoke a signature by adding a revocation record that points at it."""
    why = validation.plain_text(reason, "reason for revoking", max_length=1000, required=True)
    with unit_of_work(db, actor) as session:
        require(session, actor, Permission.SIGN_OFF, what="revoke sign-offs", anywhere=True)
        target = session.exec(
            scoped(
                select(Signoff)
                .join(ModelVersion, col(ModelVersion.id) == col(Signoff.version_id))
                .join(MLModel, col(MLModel.id) == col(ModelVersion.model_id))
                .where(Signoff.id == signoff_id, Signoff.kind == SIGNATURE),
                visible_teams(session, actor),
            )
        ).first()
        if target is None:
            raise NotFound(f"No signature #{signoff_id} is visible to you; nothing was revoked.")
        version = session.get(ModelVersion, target.version_id)
        assert version is not None
        model = get_model(
            session,
            actor,
            version.model_id,
            permission=Permission.SIGN_OFF,
            what="revoke sign-offs of {model}",
        )
        current = refresh(session, actor)
        if target.signer_id != actor.user_id:
            require(
                session,
                actor,
                Permission.COMPLIANCE_WORK,
                team_id=model.team_id,
                what=f"revoke someone else's sign-off of {model.name}",
                model_id=model.id,
            )
        already = session.exec(
            select(Signoff).where(Signoff.supersedes_id == target.id, Signoff.kind == REVOCATION)
        ).first()
        if already is not None:
            raise Conflict(
                f"Signature #{signoff_id} was already revoked by {already.printed_name} on "
                f"{_utc(already.signed_at)}."
            )
        user = session.get(User, actor.user_id)
        revocation = Signoff(
            version_id=target.version_id,
            kind=REVOCATION,
            meaning=target.meaning,
            signer_id=actor.user_id,
            printed_name=user.name if user else actor.name,
            role=_signing_role(current, model.team_id),
            artifact_sha256=version.artifact_sha256,
            evidence_sha256=evidence_hash(session, version),
            reason=why,
            supersedes_id=target.id,
        )
        session.add(revocation)
        session.flush()
        audit.record(
            session,
            actor,
            "signoff.revoked",
            object_type="signoff",
            object_id=revocation.id,
            model_id=model.id,
            summary=f"{revocation.printed_name} revoked {target.printed_name}'s "
            f"'{target.meaning}' sign-off of {model.name} v{version.number}: {why}",
            details={"revoked_signoff": target.id, "reason": why},
        )
        return revocation


def signoffs(db: Database, actor: Principal, model_name: str, number: int) -> list[SignoffView]:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        return signoff_views(session, get_version(session, model, number))


def remind_expiring(
    db: Database, *, now: datetime | None = None, within_days: int = EXPIRY_NOTICE_DAYS
) -> int:
    """Inbox reminders to model owners for signatures expiring soon; never twice for one."""
    moment = now or utcnow()
    horizon = moment + timedelta(days=within_days)
    created = 0
    with db.write() as session:
        candidates = session.exec(
            select(Signoff).where(
                Signoff.kind == SIGNATURE,
                col(Signoff.expires_at).is_not(None),
                col(Signoff.expires_at) <= horizon,
                col(Signoff.expires_at) > moment,
            )
        ).all()
        for s in candidates:
            created += _remind(session, s, moment)
    return created


def _remind(session: Session, s: Signoff, moment: datetime) -> int:
    version = session.get(ModelVersion, s.version_id)
    if version is None:
        return 0
    views = {v.signoff.id: v for v in signoff_views(session, version, now=moment)}
    if s.id not in views or views[s.id].status != "valid":
        return 0
    model = session.get(MLModel, version.model_id)
    assert model is not None
    link = f"pages/6_Compliance.py?model={model.name}&version={version.number}&signoff={s.id}"
    exists = session.exec(
        select(Notification).where(
            Notification.kind == "signoff_expiring", Notification.link == link
        )
    ).first()
    if exists is not None:
        return 0
    notify(
        session,
        {model.owner_id},
        "signoff_expiring",
        f"'{s.meaning}' sign-off of {model.name} v{version.number} expires on "
        f"{_utc(s.expires_at or moment)[:10]}",
        body=f"Signed by {s.printed_name} on {_utc(s.signed_at)}. Arrange revalidation and a "
        "new sign-off before it expires.",
        link=link,
        model_id=model.id,
        version_id=version.id,
    )
    audit.record(
        session,
        SYSTEM,
        "signoff.expiry_reminded",
        object_type="signoff",
        object_id=s.id,
        model_id=model.id,
        summary=f"Reminded the owner of {model.name} that the '{s.meaning}' sign-off of "
        f"v{version.number} expires on {_utc(s.expires_at or moment)}",
    )
    return 1
