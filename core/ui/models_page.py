"""Models page: the registry list, and one model's versions, evaluation, comparison and card."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import charts, evaluation
from core.errors import NotFound, QuorumError
from core.models import PendingChange, RiskTier, Task
from core.services import compare, model_view, registry
from core.services import portfolio as pf
from core.ui import widgets
from core.ui.home import page_of
from core.ui.model_settings import settings_section
from core.ui.pickers import asked_index
from core.ui.session import PageContext, fail, flash

MODEL_PARAM = "model"
VERSION_PARAM = "version"


def render(ctx: PageContext) -> None:
    names = pf.model_names(ctx.db, ctx.principal)
    if not names:
        st.info(
            "No model is visible to you. Models belong to teams: a data scientist registers one "
            "on the Register page, or ask an admin for a role in the team whose models you need."
        )
        return
    wanted = st.query_params.get(MODEL_PARAM)
    index = names.index(wanted) if wanted in names else None
    choice = st.selectbox(
        "Open a model",
        names,
        index=index,
        key="models_choice",
        placeholder="Choose a model to see its versions",
    )
    if choice is None:
        _table(pf.portfolio(ctx.db, ctx.principal, recent=0))
        return
    st.query_params[MODEL_PARAM] = choice
    try:
        detail = model_view.model_detail(ctx.db, ctx.principal, choice, ctx.settings.environments)
    except QuorumError as error:
        fail(error)
        return
    _model(ctx, detail)


def _table(data: pf.Portfolio) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Model": m.name,
                    "Team": m.team,
                    "Task": m.task.replace("_", " "),
                    "Risk": m.risk_tier,
                    "Owner": m.owner,
                    "Latest": m.latest_version,
                    "State": m.latest_state,
                    "Live": ", ".join(f"{e}: v{n}" for e, n in sorted(m.live.items())) or "—",
                }
                for m in page_of(data.models, "models_table_page")
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _model(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    m = detail.model
    st.header(m.name)
    st.text(m.purpose or "No purpose written yet.")
    live = ", ".join(f"{e} v{n}" for e, n in detail.live.items()) or "not deployed"
    st.text(
        f"Team: {detail.team}   ·   Owner: {detail.owner}   ·   Risk tier: {m.risk_tier}   ·   "
        f"Task: {m.task.replace('_', ' ')}   ·   Live: {live}"
    )
    if m.goal_metric:
        st.caption(
            f"Business goal: {evaluation.METRIC_LABELS.get(m.goal_metric, m.goal_metric)} "
            f"{m.goal_operator} {m.goal_target}. {m.goal_description}"
        )
    if m.tags:
        st.caption("Tags: " + ", ".join(f"{k}={v}" for k, v in m.tags.items()))
    if not detail.versions:
        st.info("This model has no versions yet. Register one on the Register page.")
        _card(ctx, detail)
        settings_section(ctx, detail, None)
        return
    _versions_table(detail)
    numbers = [v.version.number for v in detail.versions]
    number = st.selectbox(
        "Version",
        numbers,
        index=asked_index(numbers, VERSION_PARAM, "models_version"),
        key="models_version",
        format_func=lambda n: f"v{n} — {detail.version(n).state_label}",
    )
    view = detail.version(number or numbers[0])
    st.query_params[VERSION_PARAM] = str(view.version.number)
    tabs = widgets.tabs(
        ["Overview", "Evaluation", "Compare", "Model card", "Findings"], key="models_tab"
    )
    with tabs[0]:
        _overview(view)
    with tabs[1]:
        _evaluation(m, view)
    with tabs[2]:
        compare_section(ctx, detail, view)
    with tabs[3]:
        _card(ctx, detail)
        settings_section(ctx, detail, view)
    with tabs[4]:
        from core.ui.findings_panel import findings_section, pin_choices

        findings_section(ctx, m.name, view.version.number, pin_choices(view))


def _versions_table(detail: model_view.ModelDetail) -> None:
    live = {n: env for env, n in detail.live.items()}
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Version": f"v{v.version.number}",
                    "State": v.state_label,
                    "Live in": live.get(v.version.number, ""),
                    "Parent": f"v{v.parent_number}" if v.parent_number else "—",
                    "Estimator": v.version.estimator_class.rsplit(".", 1)[-1],
                    "Registered by": v.registered_by,
                    "Registered (UTC)": v.version.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Notes": v.version.notes[:80],
                }
                for v in detail.versions
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _overview(view: model_view.VersionView) -> None:
    v = view.version
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Artifact**")
        st.text(
            f"Format: {v.artifact_format}\nSize: {v.artifact_size:,} bytes\n"
            f"SHA-256: {v.artifact_sha256}\nEstimator: {v.estimator_class}\n"
            f"Original file: {v.original_filename}\nCode: {v.code_ref or '—'}"
        )
        st.markdown("**Libraries**")
        st.text("\n".join(f"{k} {val}" for k, val in v.library_versions.items()) or "—")
    with cols[1]:
        st.markdown("**Features**")
        st.dataframe(
            pd.DataFrame(
                {"Feature": list(v.feature_types), "Type": list(v.feature_types.values())}
            ),
            hide_index=True,
            height=250,
        )
        fp = v.training_fingerprint
        st.markdown("**Training data**")
        st.text(
            f"{fp.get('rows', '?')} rows, {len(fp.get('columns', []))} columns, "
            f"sha256 {str(fp.get('sha256', ''))[:16]}…"
            if fp
            else "Not recorded."
        )
    st.markdown("**Notes**")
    st.text(v.notes or "—")
    with st.expander("Parameters"):
        st.json(v.params, expanded=False)


def _evaluation(model: object, view: model_view.VersionView) -> None:
    ev = view.evaluation
    if ev is None:
        st.info("This version has no evaluation.")
        return
    result = ev.result
    threshold = view.version.decision_threshold
    at = "" if threshold is None else f", class metrics at decision threshold {threshold:g}"
    st.caption(
        f"On {ev.n_rows:,} rows of {ev.dataset_filename} (sha256 {ev.dataset_sha256[:12]}…){at}"
    )
    for warning in view.warnings:
        st.warning(warning, icon=":material/content_copy:")
    metrics = {k: v for k, v in result.get("metrics", {}).items() if v is not None}
    metric_cols = st.columns(max(len(metrics), 1))
    for col, (key, value) in zip(metric_cols, metrics.items(), strict=False):
        col.metric(evaluation.METRIC_LABELS.get(key, key), f"{value:.3f}")
    name = f"v{view.version.number}"
    if result.get("task") == Task.REGRESSION:
        st.plotly_chart(charts.residuals(result), key="eval_residuals")
    else:
        top = st.columns(2)
        top[0].plotly_chart(charts.confusion_matrix(result), key="eval_confusion")
        if (result.get("curves") or {}).get("roc"):
            top[1].plotly_chart(charts.roc_curves({name: result}), key="eval_roc")
            bottom = st.columns(2)
            bottom[0].plotly_chart(charts.pr_curves({name: result}), key="eval_pr")
            bottom[1].plotly_chart(charts.calibration_curves({name: result}), key="eval_cal")
    _fairness(result)
    for note in result.get("notes", []):
        st.caption(note)


def _fairness(result: dict) -> None:
    slices = result.get("slices") or []
    if not slices:
        return
    st.markdown(f"**Slices by {result.get('fairness', {}).get('sensitive', 'group')}**")
    metric = "recall" if result.get("task") != Task.REGRESSION else "mae"
    st.plotly_chart(charts.slice_metrics(result, metric), key="eval_slices")
    fairness = result.get("fairness") or {}
    if fairness:
        cols = st.columns(2)
        dp = fairness.get("demographic_parity_difference")
        eo = fairness.get("equalized_odds_difference")
        cols[0].metric(
            "Demographic parity difference",
            "—" if dp is None else f"{dp:.3f}",
            help="Largest gap in selection rate between groups (0 is parity).",
        )
        cols[1].metric(
            "Equalized odds difference",
            "—" if eo is None else f"{eo:.3f}",
            help="Largest gap in true or false positive rate between groups.",
        )


def compare_section(
    ctx: PageContext, detail: model_view.ModelDetail, view: model_view.VersionView
) -> None:
    """The stored comparisons of this version with its champion: read, never scored here."""
    others = [v.version.number for v in detail.versions if v.version.number != view.version.number]
    if not others:
        st.info("There is only one version: nothing to compare with yet.")
        return
    pick = st.selectbox(
        "Compare with",
        [None, *others],
        key="compare_with",
        format_func=lambda n: (
            "The champion (production, else the parent)" if n is None else f"v{n}"
        ),
    )
    name, number = detail.model.name, view.version.number
    try:
        stored = compare.stored_comparisons(ctx.db, ctx.principal, name, number, pick)
    except NotFound as missing:  # no champion: a state, not a failure
        st.info(missing.user_message, icon=":material/compare_arrows:")
        return
    except QuorumError as error:
        fail(error)
        return
    if compare.EVALUATION_DATA not in stored:
        st.info(
            "This comparison has not been computed yet: it is computed in the background for "
            "every version on its way to production. Compute it now to see it at once.",
            icon=":material/compare_arrows:",
        )
        if st.button("Compare now", key="compare_now"):
            _compute(ctx, name, number, pick)
        return
    first = stored[compare.EVALUATION_DATA].comparison
    st.markdown(
        f"**v{first.candidate} (candidate) against v{first.champion} (champion):** "
        f"{first.champion_basis}."
    )
    names = (f"v{first.candidate}", f"v{first.champion}")
    for kind, view_of in sorted(stored.items(), key=lambda kv: kv[0] != compare.PRODUCTION_DATA):
        result = view_of.comparison
        st.markdown(f"**On {view_of.data_words}**")
        _metric_table(result.rows, names, key=f"compare_table_{kind}")
        st.text(f"Goal, candidate: {result.goal_candidate}\nGoal, champion: {result.goal_champion}")
    if compare.PRODUCTION_DATA not in stored:
        st.caption(
            "No recent labelled production data to score both versions on yet (at least "
            f"{compare.MIN_LABELLED} labelled rows are needed); the table above uses "
            f"{names[0]}'s evaluation data."
        )
    if (first.candidate_result.get("curves") or {}).get("roc"):
        named = {names[0]: first.candidate_result, names[1]: first.champion_result}
        cols = st.columns(2)
        cols[0].plotly_chart(charts.roc_curves(named), key="compare_roc")
        cols[1].plotly_chart(charts.pr_curves(named), key="compare_pr")
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**Feature changes**")
        changes = (
            [f"added: {f}" for f in first.features_added]
            + [f"removed: {f}" for f in first.features_removed]
            + [f"type changed: {f}" for f in first.features_retyped]
        )
        st.text("\n".join(changes) or "Same features.")
    with cols[1]:
        st.markdown(f"**Parameter changes** (before: {names[1]}, after: {names[0]})")
        table = compare.param_table(first.params_changed)
        if table:
            st.table(pd.DataFrame(table).set_index("Parameter"))
        else:
            st.text("Same parameters.")


def _compute(ctx: PageContext, name: str, number: int, champion: int | None) -> None:
    try:
        with st.spinner("Scoring both versions on the same data…"):
            compare.compute_comparisons(ctx.db, ctx.principal, name, number, champion)
    except QuorumError as error:
        fail(error)
        return
    st.rerun()


VERDICT_COLOURS = {"better": "color: #1a7f37", "worse": "color: #cf222e"}


def _metric_table(rows: list[dict], names: tuple[str, str], key: str = "compare_table") -> None:
    """Each metric once, with its change in words and whether it is better or worse, in colour
    (a bar chart would put higher- and lower-is-better metrics side by side)."""
    frame = pd.DataFrame(
        [
            {
                "Metric": row["label"],
                f"{names[0]} (candidate)": _number(row["candidate"]),
                f"{names[1]} (champion)": _number(row["champion"]),
                "Change": row["sentence"],
                "Verdict": {True: "better", False: "worse"}.get(
                    row["better"], "same" if row["delta"] == 0 else "—"
                ),
            }
            for row in rows
        ]
    )
    if frame.empty:
        st.caption("The two versions share no metric.")
        return
    st.dataframe(
        frame.style.apply(_verdict_colours, axis=1, subset=["Change", "Verdict"]),
        hide_index=True,
        width="stretch",
        key=key,
    )


def _verdict_colours(row: pd.Series) -> list[str]:
    """The change and the verdict in the verdict's colour: green better, red worse."""
    colour = VERDICT_COLOURS.get(row["Verdict"], "")
    return [colour] * len(row)


def _number(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4g}"


def _card(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    m = detail.model
    with st.form("model_card"):
        values = {
            section: st.text_area(
                section.replace("_", " ").capitalize(),
                value=m.model_card.get(section, ""),
                key=f"card_{section}",
            )
            for section in registry.CARD_SECTIONS
        }
        if st.form_submit_button("Save model card"):
            try:
                registry.update_card(
                    ctx.db, ctx.principal, m.id or 0, values, row_version=m.row_version
                )
                flash("Model card saved.")
                st.rerun()
            except QuorumError as error:
                fail(error)
    _risk_tier(ctx, detail)
    cols = st.columns(2)
    cols[0].download_button(
        "Export card as Markdown",
        model_view.card_markdown(detail),
        file_name=f"{m.name}-model-card.md",
        mime="text/markdown",
        key="card_md",
    )
    cols[1].download_button(
        "Export card as JSON",
        model_view.card_json(detail),
        file_name=f"{m.name}-model-card.json",
        mime="application/json",
        key="card_json",
    )


def _risk_tier(ctx: PageContext, detail: model_view.ModelDetail) -> None:
    m = detail.model
    with st.form("model_risk"):
        tiers = [t.value for t in RiskTier]
        tier = st.selectbox("Risk tier", tiers, index=tiers.index(m.risk_tier), key="risk_tier")
        reason = st.text_input("Why", key="risk_reason")
        st.caption(
            "A higher tier takes effect at once; a lower one waits for a compliance officer or "
            "a second admin, and reopens the gate."
        )
        if st.form_submit_button("Change risk tier"):
            try:
                done = registry.set_risk_tier(
                    ctx.db, ctx.principal, m.name, tier, reason, row_version=m.row_version
                )
                if isinstance(done, PendingChange):
                    flash(f"Lowering the risk tier waits for a second admin (change #{done.id}).")
                else:
                    flash(f"{m.name} is now {tier} risk.")
                st.rerun()
            except QuorumError as error:
                fail(error)
