"""The approval pack of a version: its content, a fingerprint of it, and HTML and PDF renderings.

Charts are drawn with matplotlib (no browser) and embedded as PNG images. The fingerprint is
the SHA-256 of the canonical JSON of the pack's content (chart images by their SHA-256), so two
packs with the same fingerprint say the same things.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core import audit, audit_anchor, evaluation, policy
from core.artifacts import ArtifactStore
from core.auth import Principal
from core.config import get_settings
from core.db import Database
from core.errors import QuorumError
from core.models import Deployment, MLModel, ModelVersion, Team, User, utcnow
from core.services import compliance, read_as
from core.services.registry import CARD_SECTIONS, get_model, get_version, state_label
from core.services.reviews import decisions_of, policy_by_id, policy_versions
from core.services.versions import evaluation_of

AUDIT_EXCERPT = 200
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    png: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


@dataclass(frozen=True)
class Pack:
    content: dict[str, Any]
    charts: list[Chart]
    fingerprint: str

    @property
    def title(self) -> str:
        return str(self.content["title"])


def _utc(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def fingerprint_of(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- content --------------------------------------------------------------------------------


def build_pack(
    db: Database,
    actor: Principal,
    model_name: str,
    number: int,
    *,
    generated_by: str = "",
    store: ArtifactStore | None = None,
) -> Pack:
    with read_as(db, actor) as session:
        model = get_model(session, actor, model_name)
        version = get_version(session, model, number)
        content = _content(session, model, version, generated_by)
        ev = evaluation_of(session, version.id or 0)
        result = ev.result if ev else {}
    comparison, champion_result = _comparison(db, actor, model.name, number, store)
    content["comparison"] = comparison
    charts = _charts(result, champion_result, comparison, number)
    content["charts"] = [{"key": c.key, "title": c.title, "sha256": c.sha256} for c in charts]
    return Pack(content, charts, fingerprint_of(content))


def _content(
    session: Session, model: MLModel, version: ModelVersion, generated_by: str
) -> dict[str, Any]:
    names = {u.id: u.name for u in session.exec(select(User))}
    team = session.get(Team, model.team_id)
    ev = evaluation_of(session, version.id or 0)
    result = ev.result if ev else {}
    chain = audit_anchor.verify(session, get_settings())
    return {
        "title": f"Approval pack: {model.name} v{version.number}",
        "generated_at_utc": _utc(utcnow()),
        "generated_by": generated_by,
        "model": {
            "name": model.name,
            "team": team.name if team else "?",
            "owner": names.get(model.owner_id, "?"),
            "risk_tier": model.risk_tier,
            "task": model.task.replace("_", " "),
            "purpose": model.purpose,
            "tags": dict(model.tags),
            "goal": _goal(model),
            "card": {s: model.model_card.get(s, "") for s in CARD_SECTIONS},
        },
        "version": {
            "number": version.number,
            "state": state_label(version.state),
            "estimator": version.estimator_class,
            "format": version.artifact_format,
            "artifact_sha256": version.artifact_sha256,
            "registered_by": names.get(version.registered_by_id, "?"),
            "registered_at_utc": _utc(version.created_at),
            "notes": version.notes,
            "code_ref": version.code_ref,
        },
        "evaluation": _evaluation(ev, result),
        "fairness": _fairness(result),
        "checklists": _checklists(session, model, version),
        "evidence_sha256": compliance.evidence_hash(session, version),
        "decisions": [
            {
                "reviewer": names.get(d.reviewer_id, "?"),
                "decision": d.kind.replace("_", " "),
                "round": d.review_round,
                "roles": ", ".join(d.roles),
                "at_utc": _utc(d.created_at),
                "reason": d.reason,
                "artifact_sha256": d.artifact_sha256,
                "policy": policy_by_id(session, d.policy_version_id, model.risk_tier).label,
            }
            for d in decisions_of(session, version.id or 0)
        ],
        "signoffs": _signoffs(session, model, version),
        "policy": _policy(session, model, names),
        "gate": compliance.production_gate(session, model, version),
        "deployments": _deployments(session, model, names),
        "audit": {
            "events": [
                {
                    "seq": e.seq,
                    "at_utc": _utc(e.created_at),
                    "actor": e.actor_label,
                    "action": e.action,
                    "summary": e.summary,
                    "hash": e.hash,
                }
                for e in audit.query(
                    session, audit.AuditFilter(model_id=model.id, limit=AUDIT_EXCERPT)
                )
            ],
            "verification": {
                "intact": chain.intact,
                "checked": chain.checked,
                "message": chain.message,
            },
        },
    }


def _goal(model: MLModel) -> str:
    if not model.goal_metric:
        return ""
    label = evaluation.METRIC_LABELS.get(model.goal_metric, model.goal_metric)
    text = f"{label} {model.goal_operator} {model.goal_target}"
    return text + (f" ({model.goal_description})" if model.goal_description else "")


def _evaluation(ev: Any, result: dict[str, Any]) -> dict[str, Any]:
    if ev is None:
        return {"available": False}
    return {
        "available": True,
        "dataset": ev.dataset_filename,
        "dataset_sha256": ev.dataset_sha256,
        "rows": ev.n_rows,
        "metrics": {
            evaluation.METRIC_LABELS.get(k, k): v for k, v in result.get("metrics", {}).items()
        },
    }


def _fairness(result: dict[str, Any]) -> dict[str, Any]:
    slices = result.get("slices") or []
    summary = result.get("fairness") or {}
    return {
        "sensitive": summary.get("sensitive", ""),
        "summary": {k: v for k, v in summary.items() if k not in ("sensitive",)},
        "slices": [
            {
                "group": s["group"],
                "n": s["n"],
                **{evaluation.METRIC_LABELS.get(k, k): v for k, v in s["metrics"].items()},
                **({"selection rate": s.get("selection_rate")} if "selection_rate" in s else {}),
            }
            for s in slices
        ],
    }


def _checklists(session: Session, model: MLModel, version: ModelVersion) -> list[dict[str, Any]]:
    return [
        {
            "key": c.key,
            "name": c.name,
            "version": c.version,
            "complete": c.complete,
            "required_open": len(c.required_open),
            "items": [
                {
                    "key": i.key,
                    "section": i.section,
                    "title": i.title,
                    "required": i.required,
                    "status": compliance.STATUS_LABELS[i.status],
                    "owner": i.owner,
                    "notes": i.notes,
                    "na_reason": i.na_reason,
                    "evidence": [
                        {
                            "kind": e.kind.replace("_", " "),
                            "reference": e.reference,
                            "sha256": e.document_sha256 or "",
                            "added_by": e.added_by,
                            "at_utc": _utc(e.created_at),
                        }
                        for e in i.evidence
                    ],
                }
                for i in c.items
            ],
        }
        for c in compliance.version_checklists(session, model, version)
    ]


def _policy(session: Session, model: MLModel, names: dict[int | None, str]) -> dict[str, Any]:
    """The policy in force now, field by field, and every version of it with what changed."""
    versions = policy_versions(session, model.risk_tier)
    current = versions[-1]
    history = []
    for before, after in zip(versions, versions[1:], strict=False):
        history.append(
            {
                "version": after.version,
                "at_utc": _utc(after.created_at),
                "by": names.get(after.created_by_id, "?"),
                "confirmed_by": names.get(after.confirmed_by_id, "")
                if after.confirmed_by_id
                else "",
                "reason": after.reason,
                "changes": [
                    {
                        "field": spec.label,
                        "before": policy.describe(getattr(before.fields, spec.name), spec),
                        "after": policy.describe(getattr(after.fields, spec.name), spec),
                    }
                    for spec in policy.FIELDS
                    if getattr(before.fields, spec.name) != getattr(after.fields, spec.name)
                ],
            }
        )
    return {
        "in_force": current.label,
        "fields": {
            spec.label: policy.describe(getattr(current.fields, spec.name), spec)
            for spec in policy.FIELDS
        },
        "history": history,
    }


def _signoffs(session: Session, model: MLModel, version: ModelVersion) -> list[dict[str, Any]]:
    rows = []
    for view in compliance.signoff_views(session, version):
        entry = compliance.signer_view(view.signoff)
        judged = policy_by_id(session, view.signoff.policy_version_id, model.risk_tier)
        entry.update(status=view.status, problem=view.problem, policy=judged.label)
        rows.append(entry)
        if view.revocation is not None:
            revocation = compliance.signer_view(view.revocation)
            revocation.update(status="revocation", problem="")
            rows.append(revocation)
    return rows


def _deployments(
    session: Session, model: MLModel, names: dict[int | None, str]
) -> list[dict[str, Any]]:
    numbers = {
        v.id: v.number
        for v in session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id))
    }
    rows = session.exec(
        select(Deployment)
        .where(Deployment.model_id == model.id)
        .order_by(col(Deployment.live_from), col(Deployment.id))
    )
    return [
        {
            "environment": d.environment,
            "version": numbers.get(d.version_id),
            "action": d.action,
            "actor": names.get(d.actor_id, "?"),
            "live_from_utc": _utc(d.live_from),
            "live_until_utc": _utc(d.live_until),
            "reason": d.reason,
        }
        for d in rows
    ]


def _comparison(
    db: Database, actor: Principal, model_name: str, number: int, store: ArtifactStore | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from core.services.compare import compare

    try:
        result = compare(db, actor, model_name, number, store=store)
    except QuorumError as error:
        return {"available": False, "reason": error.user_message}, None
    return {
        "available": True,
        "candidate": result.candidate,
        "champion": result.champion,
        "basis": result.champion_basis,
        "rows": [
            {
                "metric": evaluation.METRIC_LABELS.get(r["metric"], r["metric"])
                if "metric" in r
                else "",
                "candidate": r.get("candidate"),
                "champion": r.get("champion"),
                "sentence": r.get("sentence", ""),
            }
            for r in result.rows
        ],
        "goal_candidate": result.goal_candidate,
        "goal_champion": result.goal_champion,
    }, result.champion_result


# --- charts ---------------------------------------------------------------------------------


def _figure(title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _charts(
    result: dict[str, Any],
    champion: dict[str, Any] | None,
    comparison: dict[str, Any],
    number: int,
) -> list[Chart]:
    charts = []
    named = [(f"v{number}", result)]
    if champion is not None:
        named.append((f"v{comparison['champion']} (champion)", champion))
    if (result.get("curves") or {}).get("roc"):
        charts.append(_roc_chart(named))
    metrics = {k: v for k, v in (result.get("metrics") or {}).items() if v is not None}
    if metrics:
        charts.append(_metric_chart(metrics, champion, comparison))
    if result.get("slices"):
        charts.append(_fairness_chart(result))
    return charts


def _roc_chart(named: list[tuple[str, dict[str, Any]]]) -> Chart:
    fig, ax = _figure("ROC curve")
    ax.plot([0, 1], [0, 1], linestyle="--", color="#7f7f7f", label="Chance")
    for i, (name, res) in enumerate(named):
        curve = (res.get("curves") or {}).get("roc")
        if not curve:
            continue
        auc = (res.get("metrics") or {}).get("roc_auc")
        label = name + ("" if auc is None else f" (AUC {auc:.3f})")
        ax.plot(curve["fpr"], curve["tpr"], color=PALETTE[i], label=label)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return Chart("roc", "ROC curve", _png(fig))


def _metric_chart(
    metrics: dict[str, float], champion: dict[str, Any] | None, comparison: dict[str, Any]
) -> Chart:
    fig, ax = _figure("Metrics")
    labels = [evaluation.METRIC_LABELS.get(k, k) for k in metrics]
    positions = list(range(len(labels)))
    if champion is None:
        ax.bar(positions, list(metrics.values()), color=PALETTE[0])
    else:
        other = champion.get("metrics") or {}
        width = 0.4
        ax.bar(
            [p - width / 2 for p in positions],
            list(metrics.values()),
            width,
            color=PALETTE[0],
            label=f"v{comparison['candidate']} (candidate)",
        )
        ax.bar(
            [p + width / 2 for p in positions],
            [other.get(k) or 0 for k in metrics],
            width,
            color=PALETTE[1],
            label=f"v{comparison['champion']} (champion)",
        )
        ax.legend(fontsize=8)
    ax.set_xticks(positions, labels, rotation=20, fontsize=8)
    return Chart("metrics", "Metrics", _png(fig))


def _fairness_chart(result: dict[str, Any]) -> Chart:
    slices = result["slices"]
    binary = any(s.get("selection_rate") is not None for s in slices)
    metric = "selection_rate" if binary else next(iter(slices[0]["metrics"]), "")
    label = "Selection rate" if binary else evaluation.METRIC_LABELS.get(metric, metric)
    sensitive = (result.get("fairness") or {}).get("sensitive", "group")
    fig, ax = _figure(f"{label} by {sensitive}")
    values = [(s.get(metric) if binary else s["metrics"].get(metric)) or 0.0 for s in slices]
    ax.bar([str(s["group"]) for s in slices], values, color=PALETTE[2])
    if binary:
        recall = [s["metrics"].get("recall") or 0.0 for s in slices]
        ax.plot([str(s["group"]) for s in slices], recall, "o", color=PALETTE[5], label="Recall")
        ax.legend(fontsize=8)
    ax.set_ylabel(label)
    return Chart("fairness", f"{label} by {sensitive}", _png(fig))


# --- HTML -----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(_number(value) if not isinstance(value, str) else value, quote=True)


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>None.</p>"
    cols = columns or list(rows[0])
    head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(pairs: dict[str, Any]) -> str:
    return _table([{"field": k, "value": v} for k, v in pairs.items()], ["field", "value"])


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;
color:#1b1b1b;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.muted{color:#666}.fp{font-family:monospace;word-break:break-all}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}.ok{color:#096}.bad{color:#b00}
pre{white-space:pre-wrap}
"""


def render_html(pack: Pack) -> str:
    c = pack.content
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(c['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(c['title'])}</h1>",
        f"<p>Generated {_e(c['generated_at_utc'])}"
        + (f" by {_e(c['generated_by'])}" if c["generated_by"] else "")
        + f"</p><p>Pack fingerprint (SHA-256): <span class='fp'>{_e(pack.fingerprint)}</span></p>",
    ]
    for title, body in _sections(pack):
        parts.append(f"<h2>{_e(title)}</h2>{body}")
    parts.append("</body></html>")
    return "".join(parts)


def _sections(pack: Pack) -> list[tuple[str, str]]:
    c = pack.content
    m, v = c["model"], c["version"]
    card = "".join(
        f"<h3>{_e(k.replace('_', ' ').capitalize())}</h3><pre>{_e(t or 'Not written yet.')}</pre>"
        for k, t in m["card"].items()
    )
    model_info = {k: m[k] for k in ("name", "team", "owner", "risk_tier", "task", "goal")}
    model_info["tags"] = ", ".join(f"{k}={val}" for k, val in m["tags"].items())
    images = {ch.key: ch for ch in pack.charts}
    return [
        ("Model card", _pairs(model_info) + card),
        ("Version", _pairs(v)),
        (
            "Metrics",
            _metrics_html(c["evaluation"]) + _img(images.get("roc")) + _img(images.get("metrics")),
        ),
        ("Fairness", _fairness_html(c["fairness"]) + _img(images.get("fairness"))),
        ("Champion comparison", _comparison_html(c["comparison"])),
        ("Checklists and evidence", _checklists_html(c["checklists"], c["evidence_sha256"])),
        ("Approval policy", _policy_html(c["policy"])),
        ("Review decisions", _table(c["decisions"])),
        ("Sign-offs", _signoffs_html(c["signoffs"])),
        ("Production gate", _gate_html(c["gate"])),
        ("Deployment history", _table(c["deployments"])),
        ("Audit trail excerpt", _audit_html(c["audit"])),
    ]


def _policy_html(p: dict[str, Any]) -> str:
    parts = [f"<p>In force now: {_e(p['in_force'])}</p>", _pairs(p["fields"])]
    if not p["history"]:
        parts.append("<p class='muted'>Never changed: the built-in defaults apply.</p>")
    for h in p["history"]:
        who = h["by"] + (f", confirmed by {h['confirmed_by']}" if h["confirmed_by"] else "")
        reason = f": {h['reason']}" if h["reason"] else ""
        parts.append(
            f"<h3>Version {_e(h['version'])}, {_e(h['at_utc'])}, {_e(who)}{_e(reason)}</h3>"
        )
        parts.append(
            _table(h["changes"]) if h["changes"] else "<p class='muted'>No field changed.</p>"
        )
    return "".join(parts)


def _img(chart: Chart | None) -> str:
    if chart is None:
        return ""
    data = base64.b64encode(chart.png).decode()
    return f"<img alt='{_e(chart.title)}' src='data:image/png;base64,{data}'>"


def _metrics_html(ev: dict[str, Any]) -> str:
    if not ev.get("available"):
        return "<p class='muted'>This version has no evaluation.</p>"
    head = (
        f"<p>On {_e(ev['rows'])} rows of {_e(ev['dataset'])} "
        f"(SHA-256 <span class='fp'>{_e(ev['dataset_sha256'])}</span>)</p>"
    )
    return head + _pairs(ev["metrics"])


def _fairness_html(f: dict[str, Any]) -> str:
    if not f["slices"]:
        return "<p class='muted'>No sensitive column was evaluated.</p>"
    return (
        f"<p>By {_e(f['sensitive'])}</p>"
        + (_pairs(f["summary"]) if f["summary"] else "")
        + _table(f["slices"])
    )


def _comparison_html(comp: dict[str, Any]) -> str:
    if not comp.get("available"):
        return f"<p class='muted'>{_e(comp.get('reason', 'No comparison.'))}</p>"
    return (
        f"<p>v{_e(comp['candidate'])} (candidate) against v{_e(comp['champion'])} (champion): "
        f"{_e(comp['basis'])}.</p>"
        + _table(comp["rows"])
        + f"<p>Goal, candidate: {_e(comp['goal_candidate'])}<br>"
        f"Goal, champion: {_e(comp['goal_champion'])}</p>"
    )


def _checklists_html(lists: list[dict[str, Any]], evidence_sha: str) -> str:
    parts = [f"<p>Evidence set SHA-256: <span class='fp'>{_e(evidence_sha)}</span></p>"]
    for cl in lists:
        state = "complete" if cl["complete"] else f"{cl['required_open']} required items open"
        parts.append(f"<h3>{_e(cl['name'])} ({_e(cl['version'])}): {_e(state)}</h3>")
        rows = [
            {
                "item": f"{i['section']}: {i['title']}",
                "required": "yes" if i["required"] else "no",
                "status": i["status"] + (f" — {i['na_reason']}" if i["na_reason"] else ""),
                "owner": i["owner"],
                "notes": i["notes"],
                "evidence": "; ".join(
                    f"{e['kind']}: {e['reference']}"
                    + (f" (sha256 {e['sha256'][:16]}…)" if e["sha256"] else "")
                    + f", added by {e['added_by']} {e['at_utc']}"
                    for e in i["evidence"]
                ),
            }
            for i in cl["items"]
        ]
        parts.append(_table(rows))
    return "".join(parts)


def _signoffs_html(rows: list[dict[str, Any]]) -> str:
    shown = [
        {
            "kind": r["kind"],
            "meaning": r["meaning"],
            "printed name": r["printed_name"],
            "role": r["role"].replace("_", " "),
            "signed (UTC)": r["signed_at_utc"],
            "expires (UTC)": r["expires_at_utc"],
            "status": r["status"] + (f": {r['problem']}" if r["problem"] else ""),
            "reason": r["reason"],
            "judged under": r.get("policy", ""),
            "artifact sha256": r["artifact_sha256"],
        }
        for r in rows
    ]
    return _table(shown)


def _gate_html(gate: list[str]) -> str:
    if not gate:
        return "<p class='ok'>Nothing the approval policy requires is missing.</p>"
    return "<ul>" + "".join(f"<li class='bad'>{_e(g)}</li>" for g in gate) + "</ul>"


def _audit_html(a: dict[str, Any]) -> str:
    verdict = a["verification"]
    css = "ok" if verdict["intact"] else "bad"
    return f"<p class='{css}'>{_e(verdict['message'])}</p>" + _table(
        a["events"], ["seq", "at_utc", "actor", "action", "summary"]
    )


# --- PDF ------------------------------------------------------------------------------------


def _font_path() -> str:
    from pathlib import Path

    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def render_pdf(pack: Pack) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("DejaVu", "", _font_path())
    pdf.add_font("DejaVu", "B", _font_path().replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
    pdf.set_title(pack.title)
    pdf.set_creator("Quorum")
    pdf.add_page()
    writer = _PdfWriter(pdf)
    c = pack.content
    writer.heading(c["title"], size=16)
    writer.line(
        f"Generated {c['generated_at_utc']}"
        + (f" by {c['generated_by']}" if c["generated_by"] else "")
    )
    writer.line(f"Pack fingerprint (SHA-256): {pack.fingerprint}")
    images = {ch.key: ch for ch in pack.charts}
    m = c["model"]
    writer.heading("Model card")
    writer.pairs({k: m[k] for k in ("name", "team", "owner", "risk_tier", "task", "goal")})
    writer.pairs({"tags": ", ".join(f"{k}={v}" for k, v in m["tags"].items())})
    for section, text in m["card"].items():
        writer.line(f"{section.replace('_', ' ').capitalize()}: {text or 'Not written yet.'}")
    writer.heading("Version")
    writer.pairs(c["version"])
    writer.heading("Metrics")
    ev = c["evaluation"]
    if ev.get("available"):
        writer.line(f"On {ev['rows']} rows of {ev['dataset']} (SHA-256 {ev['dataset_sha256']})")
        writer.pairs(ev["metrics"])
    writer.image(images.get("roc"))
    writer.image(images.get("metrics"))
    writer.heading("Fairness")
    f = c["fairness"]
    if f["slices"]:
        writer.line(f"By {f['sensitive']}")
        writer.pairs(f["summary"])
        for s in f["slices"]:
            writer.line(", ".join(f"{k}: {_number(v)}" for k, v in s.items()))
    else:
        writer.line("No sensitive column was evaluated.")
    writer.image(images.get("fairness"))
    writer.heading("Champion comparison")
    comp = c["comparison"]
    if comp.get("available"):
        writer.line(
            f"v{comp['candidate']} (candidate) against v{comp['champion']} (champion): {comp['basis']}."
        )
        for r in comp["rows"]:
            writer.line(
                r["sentence"]
                or f"{r['metric']}: {_number(r['candidate'])} vs {_number(r['champion'])}"
            )
        writer.line(f"Goal, candidate: {comp['goal_candidate']}")
        writer.line(f"Goal, champion: {comp['goal_champion']}")
    else:
        writer.line(comp.get("reason", "No comparison."))
    writer.heading("Checklists and evidence")
    writer.line(f"Evidence set SHA-256: {c['evidence_sha256']}")
    for cl in c["checklists"]:
        state = "complete" if cl["complete"] else f"{cl['required_open']} required items open"
        writer.subheading(f"{cl['name']} ({cl['version']}): {state}")
        for i in cl["items"]:
            status = i["status"] + (f" ({i['na_reason']})" if i["na_reason"] else "")
            owner = f", owner {i['owner']}" if i["owner"] else ""
            writer.line(f"[{status}] {i['section']}: {i['title']}{owner}")
            for e in i["evidence"]:
                sha = f" sha256 {e['sha256']}" if e["sha256"] else ""
                writer.line(
                    f"    evidence: {e['kind']}: {e['reference']}{sha}, by {e['added_by']} {e['at_utc']}"
                )
    writer.heading("Approval policy")
    writer.line(f"In force now: {c['policy']['in_force']}")
    writer.pairs(c["policy"]["fields"])
    for h in c["policy"]["history"]:
        who = h["by"] + (f", confirmed by {h['confirmed_by']}" if h["confirmed_by"] else "")
        writer.subheading(f"Version {h['version']}, {h['at_utc']}, {who}: {h['reason']}")
        for change in h["changes"]:
            writer.line(f"{change['field']}: {change['before']} -> {change['after']}")
    writer.heading("Review decisions")
    for d in c["decisions"] or [
        {"reviewer": "None.", "decision": "", "round": "", "at_utc": "", "reason": "", "policy": ""}
    ]:
        judged = f" under the {d['policy']}" if d["policy"] else ""
        writer.line(
            f"{d['reviewer']} {d['decision']} (round {d['round']}) {d['at_utc']}{judged} "
            f"{d['reason']}".strip()
        )
    writer.heading("Sign-offs")
    if not c["signoffs"]:
        writer.line("None.")
    for s in c["signoffs"]:
        expiry = f", expires {s['expires_at_utc']}" if s["expires_at_utc"] else ""
        problem = f": {s['problem']}" if s["problem"] else ""
        reason = f" Reason: {s['reason']}" if s["reason"] else ""
        writer.line(
            f"{s['kind']} '{s['meaning']}' by {s['printed_name']} ({s['role'].replace('_', ' ')}) "
            f"at {s['signed_at_utc']}{expiry} under the {s.get('policy', '?')} "
            f"[{s['status']}{problem}]{reason}"
        )
        writer.line(f"    artifact {s['artifact_sha256']}  evidence {s['evidence_sha256']}")
    writer.heading("Production gate")
    for g in c["gate"] or ["Nothing the approval policy requires is missing."]:
        writer.line(g)
    writer.heading("Deployment history")
    for d in c["deployments"] or [None]:
        if d is None:
            writer.line("None.")
            continue
        writer.line(
            f"{d['environment']} v{d['version']} {d['action']} by {d['actor']} from "
            f"{d['live_from_utc']} until {d['live_until_utc'] or 'now'} {d['reason']}".strip()
        )
    writer.heading("Audit trail excerpt")
    writer.line(c["audit"]["verification"]["message"])
    for e in c["audit"]["events"]:
        writer.line(f"#{e['seq']} {e['at_utc']} {e['actor']} {e['action']}: {e['summary']}")
    return bytes(pdf.output())


class _PdfWriter:
    def __init__(self, pdf: Any) -> None:
        self.pdf = pdf

    def heading(self, text: str, size: int = 13) -> None:
        self.pdf.ln(2)
        self.pdf.set_font("DejaVu", "B", size)
        self.pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(1)

    def subheading(self, text: str) -> None:
        self.pdf.set_font("DejaVu", "B", 10)
        self.pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")

    def line(self, text: str) -> None:
        self.pdf.set_font("DejaVu", "", 8.5)
        self.pdf.multi_cell(0, 4.5, text, new_x="LMARGIN", new_y="NEXT", wrapmode="CHAR")

    def pairs(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.line(f"{key.replace('_', ' ')}: {_number(value)}")

    def image(self, chart: Chart | None) -> None:
        if chart is None:
            return
        self.pdf.image(io.BytesIO(chart.png), w=150)
