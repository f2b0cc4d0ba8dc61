"""Compliance page: the officers' queue, status by framework, checklist work with evidence,
sign-offs, the approval pack and the model timeline."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import packs
from core.auth import Permission
from core.errors import QuorumError
from core.services import compliance
from core.ui import widgets
from core.ui.gate_links import asked_item, gate_list
from core.ui.pickers import open_version, pick_version
from core.ui.session import PageContext, fail, flash

STATUS_BY_LABEL = {label: key for key, label in compliance.STATUS_LABELS.items()}
NOBODY = "—"
REASON = "Reason (not applicable, or met without evidence)"


def render(ctx: PageContext) -> None:
    _queue(ctx)
    picked = pick_version(ctx, "comp")
    if picked is None:
        _templates(ctx)
        return
    model, number = picked
    try:
        status = compliance.version_compliance(ctx.db, ctx.principal, model, number)
    except QuorumError as error:
        fail(error)
        return
    st.header(f"{model} v{number}")
    st.text(
        f"Risk tier: {status.model.risk_tier}   ·   State: {status.version.state.replace('_', ' ')}"
        f"   ·   Artifact SHA-256: {status.version.artifact_sha256}"
    )
    _frameworks(status)
    _gate(status, model, number)
    tabs = widgets.tabs(["Checklists", "Sign-offs", "Approval pack", "Timeline"], key="comp_tab")
    with tabs[0]:
        _checklists(ctx, model, number)
    with tabs[1]:
        _signoffs(ctx, status)
    with tabs[2]:
        _pack(ctx, model, number)
    with tabs[3]:
        _timeline(ctx, model)
    _templates(ctx)


def _queue(ctx: PageContext) -> None:
    if not ctx.principal.can_anywhere(Permission.COMPLIANCE_WORK):
        return
    st.subheader("Waiting for compliance")
    try:
        rows = compliance.compliance_queue(ctx.db, ctx.principal)
    except QuorumError as error:
        fail(error)
        return
    if not rows:
        st.success(
            "Every version in review or approved is complete and signed.",
            icon=":material/task_alt:",
        )
        return
    for row in rows:
        cols = st.columns([3, 6, 1])
        cols[0].text(
            f"{row.model} v{row.number}\n{row.state.replace('_', ' ')}, {row.risk_tier} risk"
        )
        cols[1].text("\n".join(row.waiting_for))
        if cols[2].button("Open", key=f"comp_queue_{row.model}_{row.number}"):
            open_version(row.model, row.number, "comp")


def _frameworks(status: compliance.VersionCompliance) -> None:
    st.subheader("Status by framework")
    if not status.frameworks:
        st.info("No checklist applies to this model's risk tier and tags.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Framework": f.name,
                        "Required items done": f"{f.done} of {f.required_total}",
                        "Status": f.label,
                        "Required by policy": "yes" if f.key in status.required_checklists else "",
                    }
                    for f in status.frameworks
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    for view in status.expiring:
        s = view.signoff
        st.warning(
            f"Expiring: '{s.meaning}' signed by {s.printed_name} on "
            f"{s.signed_at:%Y-%m-%d %H:%M} UTC expires on {s.expires_at:%Y-%m-%d} UTC.",
            icon=":material/schedule:",
        )


def _gate(status: compliance.VersionCompliance, model: str, number: int) -> None:
    if status.gate:
        st.error("Production gate: still missing", icon=":material/block:")
        gate_list(status.gate_items, model, number)
    else:
        st.success(
            "Production gate: nothing the approval policy requires is missing.",
            icon=":material/verified:",
        )


# --- checklists -----------------------------------------------------------------------------


def _checklists(ctx: PageContext, model: str, number: int) -> None:
    try:
        lists = compliance.checklists(ctx.db, ctx.principal, model, number)
    except QuorumError as error:
        fail(error)
        return
    people = compliance.people(ctx.db)
    can_work = ctx.principal.can_anywhere(Permission.COMPLIANCE_WORK)
    asked = asked_item()
    for checklist in lists:
        state = "complete" if checklist.complete else f"{len(checklist.required_open)} open"
        opened = asked is not None and asked[0] == checklist.key
        with st.expander(f"{checklist.name} ({checklist.version}) — {state}", expanded=opened):
            if opened and asked is not None:
                _asked_item(checklist, asked[1])
            _checklist_editor(ctx, model, number, checklist, people, can_work)
    if can_work and lists:
        _evidence_form(ctx, model, number, lists)
        _apply_mapped_form(ctx, model, number, lists)


def _asked_item(checklist: compliance.TemplateChecklist, key: str) -> None:
    item = next((i for i in checklist.items if i.key == key), None)
    if item is None:
        st.warning(f"{checklist.name} has no item {key!r}; the list below shows all its items.")
        return
    st.info(
        f"Item {item.key} — {item.section}: {item.title} "
        f"({compliance.STATUS_LABELS[item.status]}). {item.guidance}",
        icon=":material/arrow_downward:",
    )


def _rows(checklist: compliance.TemplateChecklist) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Item": i.key,
                "Title": f"{i.section}: {i.title}",
                "Required": i.required,
                "Status": compliance.STATUS_LABELS[i.status],
                "Owner": i.owner or NOBODY,
                "Notes": i.notes,
                REASON: i.na_reason,
                "Evidence": "; ".join(f"{e.kind}: {e.reference}" for e in i.evidence)
                or ("none: see the reason" if i.status == "met" and i.na_reason else ""),
                "Also satisfies": " | ".join(i.also),
            }
            for i in checklist.items
        ]
    )


def _checklist_editor(
    ctx: PageContext,
    model: str,
    number: int,
    checklist: compliance.TemplateChecklist,
    people: list[tuple[int, str]],
    can_work: bool,
) -> None:
    original = _rows(checklist)
    if not can_work:
        st.dataframe(original, hide_index=True, width="stretch")
        return
    key = f"comp_items_{model}_{number}_{checklist.key}"
    edited = st.data_editor(
        original,
        key=key,
        hide_index=True,
        width="stretch",
        disabled=["Item", "Title", "Required", "Evidence"],
        column_config={
            "Status": st.column_config.SelectboxColumn(
                options=list(compliance.STATUS_LABELS.values()), required=True
            ),
            "Owner": st.column_config.SelectboxColumn(options=[NOBODY, *[n for _, n in people]]),
            REASON: st.column_config.TextColumn(
                help="Why the item does not apply, or why it is met without evidence. An item "
                "is met only with evidence or with this reason."
            ),
        },
    )
    with st.popover("Guidance"):
        for item in checklist.items:
            st.text(f"{item.key}: {item.guidance}")
    if st.button("Save changes", key=f"{key}_save", icon=":material/save:"):
        _save_items(
            ctx, model, number, checklist, original, edited, dict((n, i) for i, n in people)
        )


def _save_items(
    ctx: PageContext,
    model: str,
    number: int,
    checklist: compliance.TemplateChecklist,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    people: dict[str, int],
) -> None:
    columns = ["Status", "Owner", "Notes", REASON]
    saved = 0
    for index, item in enumerate(checklist.items):
        before, after = original.iloc[index], edited.iloc[index]
        if all(str(before[c] or "") == str(after[c] or "") for c in columns):
            continue
        owner = str(after["Owner"] or NOBODY)
        try:
            compliance.update_item(
                ctx.db,
                ctx.principal,
                model,
                number,
                checklist.key,
                item.key,
                status=STATUS_BY_LABEL.get(str(after["Status"]), "open"),
                owner_id=people.get(owner) if owner != NOBODY else None,
                notes=str(after["Notes"] or ""),
                na_reason=str(after[REASON] or ""),
                no_evidence_reason=str(after[REASON] or ""),
                row_version=item.row_version,
            )
        except QuorumError as error:
            st.text(f"Item {item.key}:")
            fail(error)
            return
        saved += 1
    if saved:
        flash(f"Saved {saved} checklist items. Sign-offs made before this change no longer count.")
        st.rerun()
    st.info("Nothing changed.")


def _evidence_form(
    ctx: PageContext, model: str, number: int, lists: list[compliance.TemplateChecklist]
) -> None:
    st.markdown("**Add evidence**")
    choices = [(c.key, i.key) for c in lists for i in c.items]
    titles = {(c.key, i.key): f"{c.name} · {i.key}: {i.title}" for c in lists for i in c.items}
    with st.form("comp_evidence", clear_on_submit=True):
        target = st.selectbox("Item", choices, format_func=lambda k: titles[k], key="comp_ev_item")
        kind = st.selectbox(
            "Kind",
            compliance.EVIDENCE_KINDS,
            format_func=lambda k: k.replace("_", " "),
            key="comp_ev_kind",
        )
        reference = st.text_input(
            "What it points to (for a link)",
            key="comp_ev_ref",
            placeholder="for example: v3 evaluation, fairness table by region, review thread",
        )
        upload = st.file_uploader("Document (for kind 'document')", key="comp_ev_file")
        if st.form_submit_button("Add evidence", icon=":material/attach_file:"):
            try:
                compliance.add_evidence(
                    ctx.db,
                    ctx.principal,
                    model,
                    number,
                    target[0],
                    target[1],
                    kind=kind,
                    reference=reference,
                    document=upload.getvalue()
                    if upload is not None and kind == "document"
                    else None,
                    filename=upload.name if upload is not None else "",
                )
                flash("Evidence added. Sign-offs made before it no longer count; sign again.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def _apply_mapped_form(
    ctx: PageContext, model: str, number: int, lists: list[compliance.TemplateChecklist]
) -> None:
    offers = [
        (e, item, checklist.name)
        for checklist in lists
        for item in checklist.items
        if item.also
        for e in item.evidence
    ]
    if not offers:
        return
    st.markdown("**Use evidence for mapped items too**")
    st.caption(
        "A published crosswalk maps these items to items of another framework; one piece of "
        "evidence can satisfy both. Each copy is recorded in the audit trail with its source."
    )
    choice = st.selectbox(
        "Evidence",
        offers,
        key="comp_apply_mapped",
        format_func=lambda o: f"{o[2]} · {o[1].key}: {o[0].kind} {o[0].reference}",
    )
    for line in choice[1].also:
        st.caption(line)
    if st.button("Apply to the mapped items", key="comp_apply_mapped_button"):
        try:
            reached = compliance.apply_to_mapped(ctx.db, ctx.principal, model, number, choice[0].id)
            flash(
                f"Evidence also attached to {', '.join(reached)}."
                if reached
                else "The mapped items already hold this evidence; nothing changed."
            )
            st.rerun()
        except QuorumError as error:
            fail(error)


# --- sign-offs ------------------------------------------------------------------------------


def _signoffs(ctx: PageContext, status: compliance.VersionCompliance) -> None:
    views = status.signoffs
    if views:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "ID": v.signoff.id,
                        "Meaning": v.signoff.meaning,
                        "Printed name": v.signoff.printed_name,
                        "Role": v.signoff.role.replace("_", " "),
                        "Signed (UTC)": f"{v.signoff.signed_at:%Y-%m-%d %H:%M:%S}",
                        "Expires (UTC)": f"{v.signoff.expires_at:%Y-%m-%d}"
                        if v.signoff.expires_at
                        else "",
                        "Status": v.status,
                        "Why it does not count": v.problem,
                    }
                    for v in views
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No one has signed this version yet.")
    st.caption(f"Current evidence set SHA-256: {status.evidence_sha256}")
    if not status.signable:
        st.caption(
            f"Under the {status.policy_label} you may not sign this version (or you registered "
            "it). Each meaning names the roles that may sign it; the Admin page shows them."
        )
        return
    model, number = status.model.name, status.version.number
    with st.form("comp_sign", clear_on_submit=True):
        st.markdown("**Sign this version**")
        meaning = st.selectbox("Meaning of your signature", status.signable, key="comp_meaning")
        typed = st.text_input(
            f"Type your full name to confirm ({ctx.principal.name})", key="comp_typed"
        )
        days = st.number_input(
            "Expires after (days, 0 = never)", 0, compliance.MAX_EXPIRY_DAYS, 0, key="comp_days"
        )
        st.caption(
            "Your signature records your printed name, role, the server's UTC time, and the "
            "SHA-256 of the model file and of the evidence set as they are now."
        )
        if st.form_submit_button("Sign", type="primary", icon=":material/draw:"):
            try:
                compliance.sign(
                    ctx.db, ctx.principal, model, number, meaning, typed, int(days) or None
                )
                flash(f"Signed v{number} as '{meaning}'.")
                st.rerun()
            except QuorumError as error:
                fail(error)
    revocable = [v for v in views if v.status not in ("revoked", "superseded")]
    if revocable:
        with st.form("comp_revoke", clear_on_submit=True):
            st.markdown("**Revoke a sign-off**")
            target = st.selectbox(
                "Sign-off",
                [v.signoff.id for v in revocable],
                format_func=lambda i: next(v.line for v in revocable if v.signoff.id == i),
                key="comp_revoke_id",
            )
            reason = st.text_input("Reason", key="comp_revoke_reason")
            if st.form_submit_button("Revoke", icon=":material/cancel:"):
                try:
                    compliance.revoke(ctx.db, ctx.principal, int(target or 0), reason)
                    flash("Sign-off revoked; the revocation is recorded beside it.")
                    st.rerun()
                except QuorumError as error:
                    fail(error)


# --- pack, timeline, templates --------------------------------------------------------------


def _pack(ctx: PageContext, model: str, number: int) -> None:
    if not ctx.principal.can_anywhere(Permission.EXPORT_REPORTS):
        st.info("Exporting approval packs needs the compliance officer role.")
        return
    st.write(
        "The pack holds the model card, metrics and fairness charts, the champion "
        "comparison, checklists with evidence, decisions, sign-offs, deployments and the "
        "audit trail excerpt with its verification, and its own fingerprint."
    )
    cols = st.columns(2)
    for col, fmt in zip(cols, ("pdf", "html"), strict=True):
        state_key = f"comp_pack_{model}_{number}_{fmt}"
        if col.button(f"Export pack ({fmt.upper()})", key=f"{state_key}_make"):
            with col:
                _build_pack(ctx, model, number, fmt, state_key)
        pack = st.session_state.get(state_key)
        if pack is not None:
            col.download_button(
                f"Download {pack.filename}",
                pack.data,
                file_name=pack.filename,
                mime=pack.mime,
                key=f"{state_key}_download",
                icon=":material/download:",
            )
            col.caption(f"Fingerprint: {pack.fingerprint}")


def _build_pack(ctx: PageContext, model: str, number: int, fmt: str, state_key: str) -> None:
    """The pack is built in a background thread while the page shows each step."""
    job = packs.start_export(ctx.db, ctx.principal, model, number, fmt)
    with st.status(f"Building the {fmt.upper()} approval pack…", expanded=True) as status:
        bar = st.progress(0.0, text=job.step)
        while not job.wait(0.2):
            bar.progress(job.fraction, text=job.step)
        bar.progress(1.0, text=job.step)
        if job.error is None:
            st.session_state[state_key] = job.result
            status.update(label="The approval pack is ready to download.", state="complete")
            return
        status.update(label="The approval pack could not be built.", state="error")
    if isinstance(job.error, QuorumError):
        fail(job.error)
        return
    raise job.error


def _timeline(ctx: PageContext, model: str) -> None:
    try:
        entries = compliance.timeline(ctx.db, ctx.principal, model)
    except QuorumError as error:
        fail(error)
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When (UTC)": f"{e.when:%Y-%m-%d %H:%M:%S}",
                    "What": e.kind,
                    "Version": f"v{e.version}" if e.version else "",
                    "Who": e.actor,
                    "Details": e.summary,
                }
                for e in entries
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _templates(ctx: PageContext) -> None:
    if not ctx.principal.can_anywhere(Permission.MANAGE_POLICIES):
        return
    with st.expander("Checklist templates (admin)"):
        rows = compliance.list_templates(ctx.db)
        keys = [r.template.key for r in rows]
        pick = st.selectbox(
            "Template",
            [None, *keys],
            key="comp_tpl_pick",
            format_func=lambda k: "A new template" if k is None else k,
        )
        row = next((r for r in rows if r.template.key == pick), None)
        with st.form("comp_tpl_form"):
            text = st.text_area(
                "Template (JSON)",
                value=row.template.to_json() if row else "",
                height=300,
                key=f"comp_tpl_text_{pick}",
            )
            if st.form_submit_button("Save template"):
                try:
                    compliance.save_template(
                        ctx.db, ctx.principal, text, row_version=row.row_version if row else None
                    )
                    flash("Template saved; checklists show it from now on.")
                    st.rerun()
                except QuorumError as error:
                    fail(error)
