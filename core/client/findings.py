"""`quorum findings ...` and `quorum revalidation ...`: what each command sends and prints."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.client.commands import Output, _cmd, _group, _model_version, lines
from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.client.sdk import Client


def _line(f: dict[str, Any]) -> str:
    late = "  OVERDUE" if f.get("overdue") else ""
    return (
        f"#{f['id']}  {f['model']} v{f['version']}  {f['severity']:<6} {f['status']:<8} "
        f"owner {f['owner']}  due {f['due_on']}{late}  {f['text'][:60]}"
    )


def findings_list(args: argparse.Namespace, client: Client) -> Output:
    if not args.model and not args.mine:
        raise InvalidInput("Name a model, or give --mine for the findings you own.")
    rows = (
        client.my_findings()
        if args.mine
        else client.findings(args.model, args.version, args.status)
    )
    return Output(rows, lines([_line(f) for f in rows], "No findings."))


def findings_show(args: argparse.Namespace, client: Client) -> Output:
    f = client.finding(args.id)
    history = [
        f"  {e['at']}  {e['action']} by {e['actor']}"
        + (f" [{e['evidence_file']}]" if e.get("evidence_file") else "")
        + (f": {e['note']}" if e.get("note") else "")
        for e in f["history"]
    ]
    return Output(f, "\n".join([_line(f), *history]))


def findings_raise(args: argparse.Namespace, client: Client) -> Output:
    f = client.raise_finding(
        args.model,
        args.version,
        severity=args.severity,
        text=args.text,
        owner=args.owner,
        due_on=args.due,
        anchor=args.anchor,
    )
    return Output(
        f, f"Raised {f['severity']} finding #{f['id']} for {f['owner']}, due {f['due_on']}."
    )


def findings_answer(args: argparse.Namespace, client: Client) -> Output:
    f = client.answer_finding(args.id, args.note, file=args.file)
    return Output(f, f"Answered finding #{args.id}; a reviewer closes or re-opens it.")


def findings_close(args: argparse.Namespace, client: Client) -> Output:
    f = client.close_finding(args.id, args.note)
    return Output(f, f"Finding #{args.id} closed.")


def findings_reopen(args: argparse.Namespace, client: Client) -> Output:
    f = client.reopen_finding(args.id, args.note)
    return Output(f, f"Finding #{args.id} re-opened; its owner was told.")


def revalidation_list(args: argparse.Namespace, client: Client) -> Output:
    rows = client.revalidations()
    return Output(
        rows, lines([f"{r['model']} v{r['version']}  {r['label']}" for r in rows], "Nothing live.")
    )


def revalidation_start(args: argparse.Namespace, client: Client) -> Output:
    made = client.start_revalidation(args.model, args.version, args.reason)
    return Output(
        made,
        f"Revalidation round {made['round']} of {args.model} v{args.version} is open; reviewers "
        "approve or reject it.",
    )


def revalidation_rounds(args: argparse.Namespace, client: Client) -> Output:
    rows = client.revalidation_rounds(args.model, args.version)
    text = [
        f"round {r['round']}  {r['status']}  started by {r['started_by']}  "
        f"{len(r['decisions'])} decisions, {len(r['signoffs'])} sign-offs"
        for r in rows
    ]
    return Output(rows, lines(text, "No revalidation yet."))


def add_findings(groups: Any) -> None:
    found = _group(groups, "findings", "validation findings: raise, answer, close, re-open")
    listed = _cmd(found, "list", findings_list, "findings of a model, or --mine")
    listed.add_argument("model", nargs="?", default="")
    listed.add_argument("--version", type=int)
    listed.add_argument("--status", choices=["open", "answered", "closed"])
    listed.add_argument("--mine", action="store_true", help="unresolved findings you own")
    _cmd(found, "show", findings_show, "finding ID with its history").add_argument("id", type=int)
    raised = _model_version(_cmd(found, "raise", findings_raise, "raise a finding on a version"))
    raised.add_argument("--severity", required=True, choices=["low", "medium", "high"])
    raised.add_argument("--text", required=True)
    raised.add_argument("--owner", required=True, help="e-mail of a person of the model's team")
    raised.add_argument("--due", required=True, help="due date YYYY-MM-DD")
    raised.add_argument("--anchor", default="", help="the metric or chart it is about")
    answer = _cmd(found, "answer", findings_answer, "answer finding ID (its owner)")
    answer.add_argument("id", type=int)
    answer.add_argument("--note", required=True, help="the remediation")
    answer.add_argument("--file", help="an evidence document")
    for name, handler, needed in (
        ("close", findings_close, False),
        ("reopen", findings_reopen, True),
    ):
        cmd = _cmd(found, name, handler, f"{name} finding ID (a reviewer or validator)")
        cmd.add_argument("id", type=int)
        cmd.add_argument("--note", required=needed, default="")
    reval = _group(groups, "revalidation", "periodic revalidation of live versions")
    _cmd(reval, "list", revalidation_list, "live versions with their revalidation dates")
    start = _model_version(_cmd(reval, "start", revalidation_start, "open a revalidation round"))
    start.add_argument("--reason", default="")
    _model_version(_cmd(reval, "rounds", revalidation_rounds, "rounds of a version"))
