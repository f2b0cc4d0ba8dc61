"""Register page: new model form, upload, check, summary, confirm."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import evaluation, modelfile
from core.errors import QuorumError
from core.models import RiskTier, Task
from core.sandbox import client as sandbox
from core.services import registry, users, versions
from core.ui.pickers import asked_index
from core.ui.session import PageContext, fail, flash

PREPARED_KEY = "register_prepared"
REGISTERED_KEY = "register_done"  # (model, number) of the version registered last
TASK_LABELS = {
    Task.BINARY: "Binary classification",
    Task.MULTICLASS: "Multiclass classification",
    Task.REGRESSION: "Regression",
}


def render(ctx: PageContext) -> None:
    sandbox.prestart(ctx.settings)
    _registered_link()
    with ctx.db.read() as session:
        models = registry.list_models(session, ctx.principal)
        teams = users.list_teams(session)
    with st.expander("New model", expanded=not models, icon=":material/add:"):
        _new_model_form(ctx, [t.name for t in teams])
    if not models:
        st.info("Create a model above first; then register its first version here.")
        return
    model = st.selectbox(
        "Model",
        models,
        index=asked_index(models, "model", "register_model", text=lambda m: m.name),
        key="register_model",
        format_func=lambda m: m.name,
    )
    if model is None:
        return
    st.query_params["model"] = model.name
    _upload_form(ctx, model)
    _summary(ctx)


def _registered_link() -> None:
    done = st.session_state.get(REGISTERED_KEY)
    if not done:
        return
    model, number = done
    st.page_link(
        "pages/3_Reviews.py",
        label=f"Open {model} v{number} on Reviews to submit it for review",
        icon=":material/rate_review:",
        query_params={"model": model, "version": str(number)},
    )


def select_model(name: str) -> None:
    """Make the model picker show `name` on the next run (before the picker is drawn)."""
    st.session_state.pop("register_model", None)
    st.query_params["model"] = name


def _new_model_form(ctx: PageContext, teams: list[str]) -> None:
    with st.form("new_model", clear_on_submit=False):
        cols = st.columns(3)
        name = cols[0].text_input("Model name", key="nm_name", placeholder="churn-predictor")
        team = cols[1].selectbox("Team", teams, key="nm_team")
        task = cols[2].selectbox(
            "Task", list(Task), key="nm_task", format_func=lambda t: TASK_LABELS[t]
        )
        purpose = st.text_area(
            "Purpose",
            key="nm_purpose",
            placeholder="What decision does this model support, for whom?",
        )
        cols = st.columns(3)
        risk = cols[0].selectbox("Risk tier", list(RiskTier), key="nm_risk", index=1)
        target = cols[1].text_input("Target column", key="nm_target")
        sensitive = cols[2].text_input(
            "Sensitive column (optional)",
            key="nm_sensitive",
            help="Used for slice metrics and fairness.",
        )
        cols = st.columns(3)
        metric = cols[0].selectbox(
            "Goal metric",
            list(evaluation.METRIC_LABELS),
            key="nm_metric",
            format_func=lambda m: evaluation.METRIC_LABELS[m],
        )
        operator = cols[1].selectbox("Comparison", registry.GOAL_OPERATORS, key="nm_op")
        goal = cols[2].number_input("Goal target", key="nm_goal", value=0.8, format="%.4f")
        tags = st.text_input(
            "Tags (key=value, comma-separated)",
            key="nm_tags",
            placeholder="region=eu, domain=credit",
        )
        if st.form_submit_button("Create model", type="primary"):
            try:
                spec = registry.ModelSpec(
                    name=name,
                    team=team or "",
                    task=task or "",
                    purpose=purpose,
                    risk_tier=risk or "medium",
                    target=target,
                    sensitive_column=sensitive,
                    goal_metric=metric or "",
                    goal_operator=operator or ">=",
                    goal_target=float(goal),
                    tags=registry.parse_tag_pairs([p for p in tags.split(",") if p.strip()]),
                )
                created = registry.create_model(ctx.db, ctx.principal, spec)
                select_model(created.name)
                flash(f"Model {created.name} created. Register its first version below.")
                st.rerun()
            except QuorumError as error:
                fail(error)


def _upload_form(ctx: PageContext, model: Any) -> None:
    # Outside the form, so chosen files stay chosen when the model picker changes.
    model_file = st.file_uploader(
        "Model file (.skops recommended; .joblib and .pkl are scanned and loaded safely)",
        key="upload_model_file",
        type=["skops", "joblib", "pkl", "pickle"],
    )
    eval_file = st.file_uploader(
        "Evaluation data (CSV or Parquet, with the target column)",
        key="upload_eval_file",
        type=["csv", "parquet"],
    )
    with st.form("upload_version"):
        cols = st.columns(2)
        target = cols[0].text_input(
            "Target column", value=model.target, key=f"upload_target_{model.id}"
        )
        sensitive = cols[1].text_input(
            "Sensitive column (optional)",
            value=model.sensitive_column or "",
            key=f"upload_sensitive_{model.id}",
        )
        notes = st.text_area(
            "Notes for reviewers",
            key="upload_notes",
            placeholder="What changed since the last version, and why?",
        )
        cols = st.columns(2)
        code_ref = cols[0].text_input(
            "Code reference", key="upload_code_ref", placeholder="git:abc1234"
        )
        tags = cols[1].text_input("Tags (key=value, comma-separated)", key="upload_tags")
        cols = st.columns(2)
        features = cols[0].text_input(
            "Features in training order (only for a model saved without feature names)",
            key="upload_features",
            placeholder="age, income, segment",
        )
        threshold = cols[1].text_input(
            "Decision threshold (binary classifiers, optional)",
            key="upload_threshold",
            placeholder="0.5",
            help="The positive class is predicted when its probability is at least this.",
        )
        checked = st.form_submit_button("Check files", type="primary", icon=":material/fact_check:")
    st.caption(f"Tip: {modelfile.skops_conversion_hint()}")
    if not checked:
        return
    if model_file is None or eval_file is None:
        st.error("Choose both a model file and an evaluation file, then press Check files.")
        return
    try:
        upload = versions.VersionUpload(
            model=model.name,
            model_file=model_file.getvalue(),
            model_filename=model_file.name,
            eval_file=eval_file.getvalue(),
            eval_filename=eval_file.name,
            target=target,
            sensitive=sensitive or None,
            notes=notes,
            code_ref=code_ref,
            tags=registry.parse_tag_pairs([p for p in tags.split(",") if p.strip()]),
            features=[n.strip() for n in features.split(",") if n.strip()] or None,
            decision_threshold=evaluation.check_threshold(threshold),
        )
    except QuorumError as error:
        fail(error)
        return
    st.session_state.pop(PREPARED_KEY, None)
    refusal: QuorumError | None = None
    with st.status("Checking the files…", expanded=True) as status:
        st.write(
            "Scanning the model file without running it, loading it through the "
            "allow-list, reading the evaluation data and computing metrics…"
        )
        try:
            prepared = versions.prepare_version(ctx.db, ctx.principal, upload)
        except QuorumError as error:
            refusal = error
        status.update(
            label="The files were refused: nothing was stored"
            if refusal
            else "Files checked: review the summary below",
            state="error" if refusal else "complete",
            expanded=False,
        )
    if refusal is not None:
        fail(refusal)  # open, in red, the reason first; the status above only says it ended
        return
    st.session_state[PREPARED_KEY] = (upload, prepared)


def _summary(ctx: PageContext) -> None:
    held = st.session_state.get(PREPARED_KEY)
    if not held:
        return
    upload, prepared = held
    inspected = prepared.inspected
    st.subheader(f"Summary: {prepared.model_name}")
    cols = st.columns(4)
    cols[0].metric("Estimator", inspected.estimator_class.rsplit(".", 1)[-1])
    cols[1].metric("Format", inspected.format)
    cols[2].metric("Size", f"{inspected.size_bytes / 1024:.0f} KB")
    cols[3].metric("Evaluation rows", f"{len(prepared.frame):,}")
    st.text(f"SHA-256: {inspected.sha256}")
    for warning in prepared.warnings:
        st.warning(warning, icon=":material/content_copy:")
    if prepared.decision_threshold is not None:
        st.caption(f"Class metrics at decision threshold {prepared.decision_threshold:g}.")
    metrics = prepared.result.get("metrics", {})
    st.dataframe(
        pd.DataFrame(
            [
                {"Metric": evaluation.METRIC_LABELS.get(k, k), "Value": v}
                for k, v in metrics.items()
                if v is not None
            ]
        ),
        hide_index=True,
    )
    st.caption("Features: " + ", ".join(f"{k} ({v})" for k, v in prepared.feature_types.items()))
    actions = st.columns([1, 1, 4])
    if actions[0].button(
        "Register version", type="primary", key="register_confirm", icon=":material/check:"
    ):
        try:
            version = versions.register_version(ctx.db, ctx.principal, upload, prepared=prepared)
            st.session_state.pop(PREPARED_KEY, None)
            st.session_state[REGISTERED_KEY] = (prepared.model_name, version.number)
            flash(
                f"{prepared.model_name} v{version.number} registered. Submit it for review on "
                "the Reviews page when you are ready."
            )
            st.rerun()
        except QuorumError as error:
            fail(error)
    if actions[1].button("Discard", key="register_discard"):
        st.session_state.pop(PREPARED_KEY, None)
        st.rerun()
