"""What each `quorum` client command sends and prints. `add_commands` builds the parser."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.client import progress
from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.client.sdk import Client


@dataclass(frozen=True)
class Output:
    """A command's result: `data` for --json, `message` for people, `failed` for exit 1."""

    data: Any
    message: str
    failed: bool = False


Handler = Callable[[argparse.Namespace, "Client"], Output]


def tag_pairs(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"The tag {pair!r} must look like key=value.")
        tags[key.strip()] = value.strip()
    return tags


def lines(rows: list[str], empty: str) -> str:
    return "\n".join(rows) if rows else empty


def _v(n: Any) -> str:
    return f"v{n}" if n is not None else "-"


# --- who ---------------------------------------------------------------------------------------


def whoami(args: argparse.Namespace, client: Client) -> Output:
    me = client.whoami()
    roles = [r["role"] + (f"@{r['team']}" if r.get("team") else "") for r in me.get("roles", [])]
    token = me.get("token") or {}
    kind = f" [{token.get('kind')} token {token.get('name')}]" if token else ""
    return Output(me, f"{me['name']} <{me['email']}>: {', '.join(roles) or 'no roles'}{kind}")


def users_list(args: argparse.Namespace, client: Client) -> Output:
    people = client.list_users()
    rows = [
        f"{u['email']}  {u['name']}  "
        + ", ".join(r["role"] + (f"@{r['team']}" if r.get("team") else "") for r in u["roles"])
        + ("" if u.get("active", True) else "  (inactive)")
        for u in people
    ]
    return Output(people, lines(rows, "No users."))


def tokens_list(args: argparse.Namespace, client: Client) -> Output:
    tokens = client.list_tokens()
    rows = [
        f"#{t.get('id')}  {t.get('name')}  expires {t.get('expires_at') or 'never'}"
        + (f"  last used {t['last_used_at']}" if t.get("last_used_at") else "")
        for t in tokens
    ]
    return Output(tokens, lines(rows, "You have no personal access tokens."))


def tokens_create(args: argparse.Namespace, client: Client) -> Output:
    made = client.create_token(args.name, args.expires_in_days)
    secret = made.get("token") or made.get("secret") or ""
    return Output(made, secret or f"Token {args.name} created.")


def tokens_revoke(args: argparse.Namespace, client: Client) -> Output:
    done = client.revoke_token(args.id)
    return Output(done or {"revoked": args.id}, f"Token #{args.id} revoked; it no longer works.")


def accounts_list(args: argparse.Namespace, client: Client) -> Output:
    accounts = client.list_service_accounts()
    rows = [
        f"#{a['id']}  {a['name']}  {a.get('role')}@{a.get('team')}  "
        f"expires {a.get('expires_at') or 'never'}"
        + ("" if a.get("active", True) else "  (revoked)")
        for a in accounts
    ]
    return Output(accounts, lines(rows, "No service accounts."))


def accounts_create(args: argparse.Namespace, client: Client) -> Output:
    made = client.create_service_account(args.name, args.team, args.role, args.expires_in_days)
    return Output(made, made.get("token") or f"Service account {args.name} created.")


def accounts_revoke(args: argparse.Namespace, client: Client) -> Output:
    done = client.revoke_service_account(args.id)
    return Output(
        done or {"revoked": args.id},
        f"Service account #{args.id} revoked; its token no longer works.",
    )


# --- registry ----------------------------------------------------------------------------------


def models_list(args: argparse.Namespace, client: Client) -> Output:
    models = client.list_models()
    rows = []
    for m in models:
        live = m.get("live") or {}
        where = ", ".join(f"{env} {_v(n)}" for env, n in live.items() if n) or "not live"
        rows.append(
            f"{m['name']}  {m.get('team', '')}  latest {_v(m.get('latest_version'))} "
            f"{m.get('latest_state') or ''}  {m.get('risk_tier', '')} risk  {where}"
        )
    return Output(models, lines(rows, "No models you may see."))


def models_create(args: argparse.Namespace, client: Client) -> Output:
    model = client.create_model(
        args.name,
        args.team,
        args.task,
        risk_tier=args.risk_tier,
        purpose=args.purpose,
        target=args.target,
        sensitive_column=args.sensitive,
        goal_metric=args.goal_metric,
        goal_operator=args.goal_operator,
        goal_target=args.goal_target,
        goal_description=args.goal_description,
        tags=tag_pairs(args.tag),
    )
    return Output(model, f"Model {model['name']} created in team {model.get('team', args.team)}.")


def models_archive(args: argparse.Namespace, client: Client) -> Output:
    model = client.archive_model(args.name, args.reason)
    return Output(model, f"Model {args.name} archived; it stays readable with its history.")


CARD_SECTIONS = ("purpose", "intended_use", "limitations", "data", "ethics", "caveats")


def models_card(args: argparse.Namespace, client: Client) -> Output:
    sections: dict[str, str] = {}
    for pair in args.section:
        key, sep, text = pair.partition("=")
        if not sep or key.strip() not in CARD_SECTIONS:
            raise InvalidInput(
                f"The card section {pair!r} must look like section=text, with a section among "
                f"{', '.join(CARD_SECTIONS)}."
            )
        sections[key.strip()] = text.strip()
    if not sections:
        raise InvalidInput("Give at least one --section, e.g. --section 'limitations=...'.")
    model = client.update_model(args.name, card=sections)
    return Output(model, f"Model card of {args.name}: {', '.join(sorted(sections))} written.")


def models_show(args: argparse.Namespace, client: Client) -> Output:
    m = client.get_model(args.name)
    live = ", ".join(f"{env} {_v(n)}" for env, n in (m.get("live") or {}).items() if n)
    versions = [
        f"  {_v(v['number'])}  {v['state']}  {v.get('created_at', '')}  "
        f"by {v.get('registered_by', '')}  sha256 {str(v.get('artifact_sha256', ''))[:12]}"
        for v in m.get("versions", [])
    ]
    head = (
        f"{m['name']} ({m.get('task')}, {m.get('risk_tier')} risk, team {m.get('team')}, "
        f"owner {m.get('owner')}); live: {live or 'nowhere'}"
    )
    return Output(m, "\n".join([head, *versions]) if versions else head + "\n  no versions yet")


def models_register(args: argparse.Namespace, client: Client) -> Output:
    with progress.transfer(
        f"Uploading {Path(args.model_file).name}", "the server checks and evaluates it"
    ) as bar:
        version = client.register_version(
            args.name,
            Path(args.model_file),
            Path(args.eval),
            target=args.target,
            sensitive=args.sensitive,
            notes=args.notes,
            code_ref=args.code_ref,
            tags=tag_pairs(args.tag),
            submit=args.submit,
            progress=bar,
            features=[n.strip() for n in (args.features or "").split(",") if n.strip()] or None,
            decision_threshold=args.threshold,
        )
    metrics = (version.get("evaluation") or {}).get("metrics") or {}
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float) and v is not None
    )
    threshold = version.get("decision_threshold")
    at = f" at decision threshold {threshold:g}" if threshold is not None else ""
    warned = "".join(f"\nWarning: {w}" for w in version.get("warnings") or [])
    return Output(
        version,
        f"{args.name} v{version['number']} registered ({version['state']}): "
        f"{shown or 'no metrics'}{at}; sha256 {version.get('artifact_sha256', '')}{warned}",
    )


def versions_show(args: argparse.Namespace, client: Client) -> Output:
    v = client.get_version(args.model, args.version)
    ev = v.get("evaluation") or {}
    metrics = ev.get("metrics") or {}
    fairness = ev.get("fairness") or {}
    text = [
        f"{v['model']} v{v['number']}  {v['state']}  {v.get('estimator_class', '')}  "
        f"registered by {v.get('registered_by', '')} at {v.get('created_at', '')}",
        f"  artifact sha256 {v.get('artifact_sha256')} ({v.get('artifact_size')} bytes, "
        f"{v.get('artifact_format')})",
        f"  evaluation data sha256 {ev.get('dataset_sha256')} ({ev.get('n_rows')} rows, "
        f"target {ev.get('target')})",
        *(f"  {k}: {_num(val)}" for k, val in metrics.items() if not isinstance(val, dict | list)),
    ]
    if isinstance(fairness, Mapping) and fairness:
        text += [
            f"  fairness {k}: {_num(val)}"
            for k, val in fairness.items()
            if not isinstance(val, dict | list)
        ]
    return Output(v, "\n".join(text))


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def models_compare(args: argparse.Namespace, client: Client) -> Output:
    result = client.compare(args.model, args.version)
    if result.get("champion") is None:
        head = f"Nothing of {args.model} is live in production; no champion to compare with."
    else:
        head = f"{args.model} v{args.version} against the champion v{result['champion']}:"
    rows = [f"  {line}" for line in result.get("summary", [])] or [
        f"  {r['metric']}: {_num(r.get('candidate'))} vs {_num(r.get('champion'))} "
        f"({_num(r.get('delta'))}, {'better' if r.get('better') else 'not better'})"
        for r in result.get("rows", [])
    ]
    return Output(result, "\n".join([head, *rows]))


# --- review ------------------------------------------------------------------------------------


def review_submit(args: argparse.Namespace, client: Client) -> Output:
    v = client.submit(args.model, args.version, args.note)
    return Output(v, f"{args.model} v{args.version} submitted for review ({v.get('state')}).")


def review_decide(args: argparse.Namespace, client: Client) -> Output:
    done = client.decide(args.model, args.version, args.decision, args.reason)
    state = str(done.get("state", "")).replace("_", " ")
    return Output(
        done,
        f"Recorded {args.decision.replace('_', ' ')} on {args.model} v{args.version}; "
        f"the version is now {state}.",
    )


def review_comment(args: argparse.Namespace, client: Client) -> Output:
    made = client.comment(args.model, args.version, args.body, args.anchor)
    return Output(made, f"Comment #{made.get('id')} added to {args.model} v{args.version}.")


def review_queue(args: argparse.Namespace, client: Client) -> Output:
    queue = client.review_queue()
    rows = [
        f"{q['model']} v{q['version']}  {q.get('state', '')}  since {q.get('since', '')}"
        for q in queue
    ]
    return Output(queue, lines(rows, "Nothing waits for you."))


# --- deployment --------------------------------------------------------------------------------


def deploy_promote(args: argparse.Namespace, client: Client) -> Output:
    done = client.promote(args.model, args.version, args.env, args.reason)
    return Output(done, f"{args.model} v{done.get('version', args.version)} is live in {args.env}.")


def deploy_rollback(args: argparse.Namespace, client: Client) -> Output:
    done = client.rollback(args.model, args.env, args.reason)
    return Output(
        done, f"Rolled back {args.model} in {args.env}; {_v(done.get('version'))} is live."
    )


def deploy_status(args: argparse.Namespace, client: Client) -> Output:
    status = client.deploy_status(args.model)
    live = status.get("live") or {}
    rows = [f"{env}: " + (f"v{n}" if n else "nothing live") for env, n in live.items()]
    return Output({"model": args.model, **status}, lines(rows, f"{args.model} was never deployed."))


def deploy_live_at(args: argparse.Namespace, client: Client) -> Output:
    version = client.live_at(args.model, args.env, args.at)
    data = {"model": args.model, "environment": args.env, "at": args.at, "version": version}
    where = f"v{version} was live" if version is not None else "nothing was live"
    return Output(data, f"{where} in {args.env} at {args.at}.")


# --- monitoring --------------------------------------------------------------------------------


def monitor_ingest(args: argparse.Namespace, client: Client) -> Output:
    send = client.log_labels if args.kind == "labels" else client.log_predictions
    with progress.transfer(f"Uploading {Path(args.file).name}", "the server ingests it") as bar:
        result = send(args.model, Path(args.file), args.env, progress=bar)
    return Output(result, str(result.get("message") or f"{result.get('rows')} rows ingested."))


def monitor_void(args: argparse.Namespace, client: Client) -> Output:
    result = client.void_batch(args.batch, args.reason)
    return Output(result, str(result.get("message") or f"Batch #{args.batch} voided."))


def monitor_report(args: argparse.Namespace, client: Client) -> Output:
    report = client.report(args.model, args.env, args.window)
    features = report.get("features") or []
    drifted = [f.get("feature") for f in features if f.get("verdict") == "drift"]
    message = (
        f"{args.model} in {args.env}, window {report.get('window')}: "
        + (f"drift in {', '.join(map(str, drifted))}" if drifted else "no drift")
        + " (use --json for the whole report)"
    )
    return Output(report, message)


def monitor_alerts(args: argparse.Namespace, client: Client) -> Output:
    alerts = client.alerts(args.model, args.status)
    rows = [
        f"#{a['id']}  {a.get('status')}  {a.get('kind')}  {a.get('metric') or ''}  "
        f"{a.get('window_start') or ''}  {a.get('message') or ''}"
        for a in alerts
    ]
    return Output(alerts, lines(rows, "No alerts."))


def monitor_alert(args: argparse.Namespace, client: Client) -> Output:
    alert = client.set_alert(args.id, args.status)
    return Output(alert, f"Alert #{args.id} is now {alert.get('status', args.status)}.")


# --- compliance --------------------------------------------------------------------------------


def compliance_checklist(args: argparse.Namespace, client: Client) -> Output:
    checklists = client.checklists(args.model, args.version)
    rows: list[str] = []
    for c in checklists:
        rows.append(f"{c['template']}: {c.get('name', '')}")
        rows += [
            f"  {i['key']}  {i['status']}  {i.get('title', '')}"
            + (f"  ({len(i['evidence'])} evidence)" if i.get("evidence") else "")
            for i in c.get("items", [])
        ]
    return Output(checklists, lines(rows, "No checklists apply to this version."))


def compliance_item(args: argparse.Namespace, client: Client) -> Output:
    if args.status is None and args.notes is None and args.na_reason is None:
        raise InvalidInput("Give --status, --notes or --na-reason to change the item.")
    item = client.set_item(
        args.model,
        args.version,
        args.template,
        args.item,
        status=args.status,
        notes=args.notes,
        na_reason=args.na_reason,
    )
    return Output(item, f"Item {args.template}/{args.item} is {item.get('status', 'updated')}.")


def compliance_evidence(args: argparse.Namespace, client: Client) -> Output:
    if args.link is not None and not args.kind:
        raise InvalidInput(
            "Give --kind with --link: evaluation, fairness, drift_report, review_thread or "
            "model_card."
        )
    made = client.add_evidence(
        args.model,
        args.version,
        args.template,
        args.item,
        reference=args.link,
        kind=args.kind,
        file=args.file,
    )
    return Output(made, f"Evidence added to {args.template}/{args.item}.")


def compliance_signoffs(args: argparse.Namespace, client: Client) -> Output:
    signoffs = client.signoffs(args.model, args.version)
    rows = [
        f"#{s['id']}  {s['meaning']}  {s['printed_name']} ({s.get('role', '')})  "
        f"{s['signed_at']}  {s.get('kind', '')}"
        for s in signoffs
    ]
    return Output(signoffs, lines(rows, "No sign-offs yet."))


def compliance_sign(args: argparse.Namespace, client: Client) -> Output:
    made = client.sign(
        args.model,
        args.version,
        args.meaning,
        args.name,
        role=args.role,
        reason=args.reason,
        expires_in_days=args.expires_in_days,
    )
    return Output(
        made,
        f"Signed {args.model} v{args.version} as '{made.get('meaning', args.meaning)}' by "
        f"{made.get('printed_name', args.name)} at {made.get('signed_at', '')} (sign-off "
        f"#{made.get('id')}).",
    )


def compliance_revoke(args: argparse.Namespace, client: Client) -> Output:
    made = client.revoke_signoff(args.id, args.reason)
    return Output(made, f"Sign-off #{args.id} revoked.")


def compliance_pack(args: argparse.Namespace, client: Client) -> Output:
    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("pdf", "html"):
        raise InvalidInput(f"--out {out} must end in .pdf or .html to choose the pack format.")
    if not out.parent.is_dir():
        raise InvalidInput(f"The folder {out.parent} does not exist; create it or choose another.")
    handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=".pack-", delete=False)
    try:
        with handle, progress.transfer(f"Downloading {out.name}") as bar:
            meta = client.pack(args.model, args.version, handle, fmt, progress=bar)
        os.replace(handle.name, out)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    size = out.stat().st_size
    data = {"file": str(out), "format": fmt, "bytes": size, **meta}
    return Output(data, f"Approval pack of {args.model} v{args.version} written to {out}.")


# --- audit -------------------------------------------------------------------------------------


def audit_events(args: argparse.Namespace, client: Client) -> Output:
    events = client.audit_events(args.model, args.action, args.limit, args.before_seq)
    rows = [
        f"#{e['seq']}  {e['created_at']}  {e.get('actor', '')}  {e['action']}  "
        f"{e.get('summary', '')}"
        for e in events
    ]
    return Output(events, lines(rows, "No audit events match."))


def audit_verify(args: argparse.Namespace, client: Client) -> Output:
    report = client.audit_verify()
    return Output(report, str(report.get("message", "")), failed=not report.get("intact"))


# --- the parser --------------------------------------------------------------------------------


def _cmd(sub: Any, name: str, handler: Handler, help_text: str, **defaults: Any) -> Any:
    command = sub.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler, **defaults)
    return command


def _model_version(command: Any) -> Any:
    command.add_argument("model")
    command.add_argument("version", type=int)
    return command


def _group(groups: Any, name: str, help_text: str) -> Any:
    return groups.add_parser(name, help=help_text, description=help_text).add_subparsers(
        dest="command", required=True
    )


def add_commands(groups: Any) -> None:
    _cmd(groups, "whoami", whoami, "the user (or service account) QUORUM_TOKEN acts as")
    _add_models(groups)
    _add_review(groups)
    _add_deploy(groups)
    _add_monitor(groups)
    _add_compliance(groups)
    _add_people(groups)
    from core.client.findings import add_findings

    add_findings(groups)


def _add_models(groups: Any) -> None:
    models = _group(groups, "models", "the registry")
    _cmd(models, "list", models_list, "models you may see, with their latest and live versions")
    create = _cmd(models, "create", models_create, "create model NAME in --team")
    create.add_argument("name")
    create.add_argument("--team", required=True)
    create.add_argument(
        "--task",
        required=True,
        choices=["binary_classification", "multiclass_classification", "regression"],
    )
    create.add_argument("--risk-tier", default="medium", choices=["low", "medium", "high"])
    create.add_argument("--purpose", default="")
    create.add_argument("--target", help="target column of evaluation data")
    create.add_argument("--sensitive", help="sensitive column for fairness")
    create.add_argument("--goal-metric")
    create.add_argument("--goal-operator", choices=[">=", "<="])
    create.add_argument("--goal-target", type=float)
    create.add_argument("--goal-description")
    create.add_argument("--tag", action="append", default=[], help="key=value, repeatable")
    show = _cmd(models, "show", models_show, "a model, its versions and where it is live")
    show.add_argument("name")
    card = _cmd(models, "card", models_card, "write sections of model NAME's card")
    card.add_argument("name")
    card.add_argument(
        "--section",
        action="append",
        default=[],
        help="section=text, repeatable; sections: " + ", ".join(CARD_SECTIONS),
    )
    archive = _cmd(models, "archive", models_archive, "archive model NAME (nothing is deleted)")
    archive.add_argument("name")
    archive.add_argument("--reason", required=True)
    register = _cmd(models, "register", models_register, "register a new version of NAME")
    register.add_argument("name")
    register.add_argument("model_file", help=".skops, .joblib, .pkl or .onnx")
    register.add_argument("--eval", required=True, help="evaluation data (CSV or Parquet)")
    register.add_argument("--target", help="target column (default: the model's)")
    register.add_argument("--sensitive", help="sensitive column for fairness")
    register.add_argument("--notes", default="")
    register.add_argument("--code-ref", default="")
    register.add_argument("--tag", action="append", default=[], help="key=value, repeatable")
    register.add_argument("--submit", action="store_true", help="submit for review at once")
    register.add_argument(
        "--features",
        help="a,b,c: feature names in training order, for a model saved without them",
    )
    register.add_argument(
        "--threshold",
        type=float,
        help="binary classifiers: predict the positive class from this probability (e.g. 0.3)",
    )
    _model_version(
        _cmd(models, "compare", models_compare, "a version against the live production one")
    )
    versions = _group(groups, "versions", "model versions")
    _model_version(_cmd(versions, "show", versions_show, "metrics, fairness and hashes"))


def _add_review(groups: Any) -> None:
    review = _group(groups, "review", "reviews, decisions and comments")
    submit = _model_version(_cmd(review, "submit", review_submit, "submit for review"))
    submit.add_argument("--note", default="")
    for name, decision in (
        ("approve", "approve"),
        ("request-changes", "request_changes"),
        ("reject", "reject"),
    ):
        cmd = _cmd(review, name, review_decide, f"{name.replace('-', ' ')} MODEL VERSION",
                   decision=decision)  # fmt: skip
        _model_version(cmd).add_argument("--reason", default="", required=decision != "approve")
    comment = _model_version(_cmd(review, "comment", review_comment, "comment on a version"))
    comment.add_argument("body", help="the comment; @name mentions a person")
    comment.add_argument("--anchor", default="", help="what it refers to, e.g. a metric")
    _cmd(review, "queue", review_queue, "what waits for your review")


def _add_deploy(groups: Any) -> None:
    deploy = _group(groups, "deploy", "deployments")
    promote = _model_version(_cmd(deploy, "promote", deploy_promote, "make a version live"))
    promote.add_argument("--env", required=True, help="staging or production")
    promote.add_argument("--reason", default="")
    rollback = _cmd(deploy, "rollback", deploy_rollback, "go back to the previous live version")
    rollback.add_argument("model")
    rollback.add_argument("--env", required=True)
    rollback.add_argument("--reason", required=True)
    _cmd(deploy, "status", deploy_status, "what is live where, and the history").add_argument(
        "model"
    )
    live_at = _cmd(deploy, "live-at", deploy_live_at, "which version was live at a time")
    live_at.add_argument("model")
    live_at.add_argument("--env", required=True)
    live_at.add_argument("--at", required=True, help="ISO 8601 time, e.g. 2026-03-01T12:00Z")


def _add_monitor(groups: Any) -> None:
    monitor = _group(groups, "monitor", "production monitoring")
    for name, kind, help_text, columns in (
        ("ingest", "predictions", "ingest production predictions", "timestamp, prediction_id, "
         "features"),
        ("labels", "labels", "join labels to predictions by id", "prediction_id, label"),
    ):  # fmt: skip
        cmd = _cmd(monitor, name, monitor_ingest, help_text, kind=kind)
        cmd.add_argument("model")
        cmd.add_argument("file", help=f"CSV or Parquet: {columns}")
        cmd.add_argument("--env", default="production")
    void = _cmd(monitor, "void", monitor_void, "void a prediction or label batch with a reason")
    void.add_argument("batch", type=int, help="the batch number the ingest answered")
    void.add_argument("--reason", required=True, help="why, e.g. 'labels were 0/1, not Yes/No'")
    report = _cmd(monitor, "report", monitor_report, "drift, quality and performance of a window")
    report.add_argument("model")
    report.add_argument("--env", default="production")
    report.add_argument("--window", help="window start date YYYY-MM-DD (default: the latest)")
    alerts = _cmd(monitor, "alerts", monitor_alerts, "alerts of a model")
    alerts.add_argument("model")
    alerts.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    alert = _cmd(monitor, "alert", monitor_alert, "acknowledge or resolve alert ID")
    alert.add_argument("id", type=int)
    alert.add_argument("--status", required=True, choices=["acknowledged", "resolved"])


def _add_compliance(groups: Any) -> None:
    comp = _group(groups, "compliance", "checklists, evidence, sign-offs and approval packs")
    _model_version(_cmd(comp, "checklist", compliance_checklist, "the checklists of a version"))
    item = _model_version(_cmd(comp, "item", compliance_item, "set a checklist item"))
    item.add_argument("template")
    item.add_argument("item")
    item.add_argument("--status", choices=["open", "met", "not_applicable"])
    item.add_argument("--notes")
    item.add_argument("--na-reason")
    evidence = _model_version(_cmd(comp, "evidence", compliance_evidence, "attach evidence"))
    evidence.add_argument("template")
    evidence.add_argument("item")
    what = evidence.add_mutually_exclusive_group(required=True)
    what.add_argument("--link", help="a URL or document reference")
    what.add_argument("--file", help="a document to upload")
    evidence.add_argument(
        "--kind",
        help="what a --link points at: evaluation, fairness, drift_report, review_thread or "
        "model_card",
    )
    _model_version(_cmd(comp, "signoffs", compliance_signoffs, "the sign-offs of a version"))
    sign = _model_version(_cmd(comp, "sign", compliance_sign, "sign a version electronically"))
    sign.add_argument("--meaning", required=True, help='e.g. "approved for production"')
    sign.add_argument("--name", required=True, help="your full name, typed as your signature")
    sign.add_argument("--role", default="")
    sign.add_argument("--reason", default="")
    sign.add_argument("--expires-in-days", type=int)
    revoke = _cmd(comp, "revoke", compliance_revoke, "revoke sign-off ID")
    revoke.add_argument("id", type=int)
    revoke.add_argument("--reason", required=True)
    pack = _model_version(_cmd(comp, "pack", compliance_pack, "download the approval pack"))
    pack.add_argument("--out", required=True, help="FILE.pdf or FILE.html")


def _add_people(groups: Any) -> None:
    audit = _group(groups, "audit", "the audit trail")
    events = _cmd(audit, "events", audit_events, "recent audit events, newest first")
    events.add_argument("--model")
    events.add_argument("--action")
    events.add_argument("--limit", type=int)
    events.add_argument("--before-seq", type=int)
    _cmd(audit, "verify", audit_verify, "check the hash chain on the server")
    users = _group(groups, "users", "people (admin)")
    _cmd(users, "list", users_list, "everyone, with their roles (admin)")
    tokens = _group(groups, "tokens", "your personal access tokens")
    _cmd(tokens, "list", tokens_list, "your tokens")
    create = _cmd(tokens, "create", tokens_create, "a new token; its secret is printed once")
    create.add_argument("name")
    create.add_argument("--expires-in-days", type=int)
    revoke = _cmd(tokens, "revoke", tokens_revoke, "revoke token ID")
    revoke.add_argument("id", type=int)
    accounts = _group(groups, "service-accounts", "pipelines' identities (admin)")
    _cmd(accounts, "list", accounts_list, "service accounts (admin)")
    made = _cmd(accounts, "create", accounts_create, "a new account; its token is printed once")
    made.add_argument("name")
    made.add_argument("--team", required=True)
    made.add_argument("--role", required=True, help="data_scientist or reviewer")
    made.add_argument("--expires-in-days", type=int)
    gone = _cmd(accounts, "revoke", accounts_revoke, "revoke service account ID")
    gone.add_argument("id", type=int)
