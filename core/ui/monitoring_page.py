"""Monitoring page: health in plain words, metric series, drift, quality, performance, alerts,
retraining and uploads. Everything drawn comes from the stored window aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from core import charts
from core.auth import SYSTEM, Permission
from core.errors import NotFound, QuorumError
from core.services import monitoring
from core.ui import widgets
from core.ui.session import PageContext, database, fail, flash

MODEL_PARAM = "model"
STATUS_SENTENCES = {
    monitoring.HEALTHY: "Working as intended: goal met, inputs as expected.",
    monitoring.AT_RISK: "Watch closely: the inputs or their quality have changed.",
    monitoring.FAILING: "Needs action: the model does not meet its goal.",
    monitoring.NO_DATA: "No production data yet: nothing to judge.",
}
STATUS_ICONS = {
    monitoring.HEALTHY: ":material/check_circle:",
    monitoring.AT_RISK: ":material/warning:",
    monitoring.FAILING: ":material/error:",
    monitoring.NO_DATA: ":material/hourglass_empty:",
}


@dataclass
class PageData:
    card: monitoring.HealthCard
    series: pd.DataFrame
    drift: pd.DataFrame
    quality: pd.DataFrame
    performance: pd.DataFrame


@st.cache_resource(show_spinner=False, max_entries=16)
def _monitoring_data(
    url: str, model: str, env: str, fingerprint: tuple[Any, ...]
) -> monitoring.MonitoringData:
    """Window aggregates of one model (read-only; a new fingerprint reloads them). Shared
    across people: the fingerprint is read as the signed-in person first, which refuses a
    model they may not see."""
    return monitoring.monitoring_data(database(), SYSTEM, model, env)


@st.cache_data(show_spinner=False, max_entries=32)
def _page_data(url: str, model: str, env: str, fingerprint: tuple[Any, ...]) -> PageData:
    data = _monitoring_data(url, model, env, fingerprint)
    return PageData(
        card=monitoring.health_card(data),
        series=monitoring.metric_series(data),
        drift=monitoring.drift_results(data),
        quality=monitoring.quality_results(data),
        performance=monitoring.performance_results(data),
    )


def render(ctx: PageContext) -> None:
    names = monitoring.monitored_models(ctx.db, ctx.principal)
    if not names:
        st.info("No model is live yet. Once a version is deployed, its monitoring shows here.")
        return
    wanted = st.query_params.get(MODEL_PARAM)
    if wanted and wanted not in names and "mon_model" not in st.session_state:
        st.info(
            f"{wanted} is not live in any environment, so it has no production data to show. "
            "Promote a version on the Deployments page; here are the models that are live.",
            icon=":material/info:",
        )
    left, right = st.columns([3, 2])
    model = left.selectbox(
        "Model", names, index=names.index(wanted) if wanted in names else 0, key="mon_model"
    )
    envs = list(ctx.settings.environments)
    env = right.selectbox(
        "Environment",
        envs,
        index=envs.index("production") if "production" in envs else 0,
        key="mon_env",
    )
    st.query_params[MODEL_PARAM] = model
    try:
        fingerprint = monitoring.data_fingerprint(ctx.db, ctx.principal, model, env)
        bundle = _page_data(ctx.db.url, model, env, fingerprint)
        data = _monitoring_data(ctx.db.url, model, env, fingerprint)
    except NotFound as missing:  # nothing live in this environment: a state, not a failure
        st.info(missing.user_message, icon=":material/info:")
        _upload(ctx, model, env)
        return
    except QuorumError as error:
        fail(error)
        _upload(ctx, model, env)
        return
    _health(bundle.card)
    if data.outside_note:
        st.info(data.outside_note, icon=":material/cloud:")
    if data.empty:
        _upload(ctx, model, env)
        return
    tabs = widgets.tabs(
        ["Over time", "Drift", "Data quality", "Performance", "Alerts", "Upload"], key="mon_tab"
    )
    with tabs[0]:
        _over_time(bundle, data)
    with tabs[1]:
        _drift(bundle, data)
    with tabs[2]:
        _quality(bundle)
    with tabs[3]:
        _performance(bundle, data)
    with tabs[4]:
        _alerts(ctx, model, env)
    with tabs[5]:
        _upload(ctx, model, env)


def _health(card: monitoring.HealthCard) -> None:
    with st.container(border=True):
        st.subheader(f"Health: {card.status}")
        show = {
            monitoring.HEALTHY: st.success,
            monitoring.AT_RISK: st.warning,
            monitoring.FAILING: st.error,
        }.get(card.status, st.info)
        show(
            STATUS_SENTENCES.get(card.status, "No verdict yet."), icon=STATUS_ICONS.get(card.status)
        )
        st.text(card.headline)
        st.text(card.goal)
        for reason in card.reasons:
            st.text(f"• {reason}")
        if card.drift:
            st.caption(f"Latest window ({card.last_window}): " + " ".join(card.drift))


def _over_time(bundle: PageData, data: monitoring.MonitoringData) -> None:
    series, settings = bundle.series, data.settings
    st.caption(
        f"One point per window ({monitoring.WINDOWS[settings.window]}); diamonds mark anomalies "
        "(far from the recent windows)."
    )
    goal = settings.goal
    if goal is not None and series["goal_value"].notna().any():
        st.plotly_chart(
            charts.time_series(
                series,
                "window",
                "goal_value",
                f"{goal.metric} per window (goal {goal.operator} {goal.target:.3g})",
                threshold=goal.target,
                anomalies_col="goal_value_anomaly",
            ),
            key="chart_goal",
        )
    st.plotly_chart(
        charts.time_series(
            series,
            "window",
            "drift_share",
            "Share of drifted features",
            threshold=settings.drift.dataset_drift_share,
            anomalies_col="drift_share_anomaly",
        ),
        key="chart_drift_share",
    )
    st.plotly_chart(
        charts.time_series(
            series, "window", "n_rows", "Rows per window", anomalies_col="n_rows_anomaly"
        ),
        key="chart_rows",
    )


def _drift(bundle: PageData, data: monitoring.MonitoringData) -> None:
    drift = bundle.drift
    st.plotly_chart(charts.drift_heatmap(drift), key="chart_heatmap")
    windows = sorted(data.windows)
    features = [*data.profile.features]
    left, right = st.columns(2)
    feature = left.selectbox("Feature", features, key="mon_feature")
    window = right.selectbox("Window", windows, index=len(windows) - 1, key="mon_window")
    try:
        dist = monitoring.distribution(data, feature, window)
    except QuorumError as error:
        fail(error)
        return
    st.plotly_chart(
        charts.distribution_compare(
            dist.bins, dist.reference, dist.current, f"{feature}: reference vs {window}"
        ),
        key="chart_distribution",
    )
    if dist.drift is not None:
        d = dist.drift
        st.text(
            f"{d.test}: {d.value:.4g} (threshold {d.threshold:.4g}) -> "
            f"{'drift' if d.drifted else 'no drift'}. Why this test: {d.reason}."
        )
    latest = drift[drift["window"] == window]
    st.dataframe(
        latest[["feature", "test", "value", "threshold", "drifted", "reason"]],
        hide_index=True,
        width="stretch",
        key="table_drift",
    )


def _quality(bundle: PageData) -> None:
    quality = bundle.quality
    issues = quality.groupby("window")["issues"].first().reset_index()
    st.dataframe(issues.sort_values("window", ascending=False), hide_index=True, key="q_issues")
    st.dataframe(
        quality.sort_values(["window", "feature"], ascending=[False, True]),
        hide_index=True,
        width="stretch",
        key="q_table",
    )


def _performance(bundle: PageData, data: monitoring.MonitoringData) -> None:
    perf = bundle.performance
    st.caption(f"Goal: {data.goal_description}")
    regression = data.task == "regression"
    metric = "mae" if regression else "accuracy"
    if data.settings.goal is not None and data.settings.goal.metric in perf:
        metric = data.settings.goal.metric
    frame = perf.copy()
    target = data.settings.goal.target if data.settings.goal else None
    st.plotly_chart(
        charts.time_series(frame, "window", metric, f"Realised {metric}", threshold=target),
        key="chart_realised",
    )
    estimated = f"estimated_{metric}"
    if estimated in frame and frame[estimated].notna().any():
        st.plotly_chart(
            charts.time_series(
                frame, "window", estimated, f"Estimated {metric} (CBPE)", threshold=target
            ),
            key="chart_estimated",
        )
    st.dataframe(perf, hide_index=True, width="stretch", key="perf_table")


def _alerts(ctx: PageContext, model: str, env: str) -> None:
    incidents = monitoring.alerts(ctx.db, ctx.principal, model, env)
    st.subheader(f"Open incidents ({len(incidents)})")
    st.caption(
        "One incident per kind of problem; it counts the windows in breach and closes by itself "
        "once the condition has cleared for a few windows in a row."
    )
    can_manage = ctx.principal.can_anywhere(Permission.MANAGE_MONITORING)
    unacknowledged = sum(1 for i in incidents if i.status == monitoring.OPEN)
    if (
        can_manage
        and unacknowledged
        and st.button(f"Acknowledge all open ({unacknowledged})", key="ack_all")
    ):
        _acknowledge_all(ctx, model, env)
    for alert in incidents[:50]:
        with st.container(border=True):
            st.text(alert.title)
            st.text(alert.message)
            if can_manage:
                left, right = st.columns(2)
                if alert.status == monitoring.OPEN and left.button(
                    "Acknowledge", key=f"ack_{alert.id}"
                ):
                    _set_alert(ctx, alert.id, monitoring.ACKNOWLEDGED)
                if right.button("Resolve", key=f"resolve_{alert.id}"):
                    _set_alert(ctx, alert.id, monitoring.RESOLVED)
    if len(incidents) > 50:
        st.caption(f"Showing the 50 latest of {len(incidents)} open incidents.")
    st.subheader("Retraining tasks")
    tasks = monitoring.retraining_tasks(ctx.db, ctx.principal, model)
    if not tasks:
        st.text("No retraining task.")
    for task in tasks:
        with st.container(border=True):
            result = f" -> v{task.result_version}" if task.result_version else ""
            st.text(f"#{task.id} · from v{task.version} · {task.status}{result}")
            st.text(task.reason)
            if task.status == monitoring.OPEN and ctx.principal.can_anywhere(Permission.RETRAIN):
                if st.button("Retrain", key=f"retrain_{task.id}", type="primary"):
                    _retrain(ctx, model, env, task.id)
    _batches(ctx, model, env)


def _acknowledge_all(ctx: PageContext, model: str, env: str) -> None:
    try:
        count = monitoring.acknowledge_incidents(ctx.db, ctx.principal, model, env)
    except QuorumError as error:
        fail(error)
        return
    flash(f"{count} incident(s) of {model} acknowledged.")
    st.rerun()


def _batches(ctx: PageContext, model: str, env: str) -> None:
    st.subheader("Batches")
    rows = monitoring.batches(ctx.db, ctx.principal, model, env)
    if not rows:
        st.text("No batch was ingested here yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Batch": b.id,
                    "Kind": b.kind,
                    "File": b.filename,
                    "Rows": b.n_rows,
                    "Version": b.version,
                    "When (UTC)": b.created_at.strftime("%Y-%m-%d %H:%M"),
                    "Voided": b.void_reason or "",
                }
                for b in rows
            ]
        ),
        hide_index=True,
        width="stretch",
        key="batches_table",
    )
    allowed = ctx.principal.can_anywhere(Permission.INGEST) or ctx.principal.can_anywhere(
        Permission.MANAGE_MONITORING
    )
    live = [b.id for b in rows if b.voided_at is None]
    if not allowed or not live:
        return
    with st.form("void_batch", clear_on_submit=True):
        batch_id = st.selectbox("Batch to void", live, key="void_batch_id")
        reason = st.text_input("Why (kept in the audit trail)", key="void_reason")
        sent = st.form_submit_button("Void batch")
    if sent and batch_id is not None:
        try:
            result = monitoring.void_batch(ctx.db, ctx.principal, model, int(batch_id), reason)
        except QuorumError as error:
            fail(error)
            return
        flash(result.message)
        st.rerun()


def _set_alert(ctx: PageContext, alert_id: int, status: str) -> None:
    try:
        monitoring.set_alert_status(ctx.db, ctx.principal, alert_id, status)
    except QuorumError as error:
        fail(error)
        return
    flash(f"Incident #{alert_id} {status}.")
    st.rerun()


def _retrain(ctx: PageContext, model: str, env: str, task_id: int) -> None:
    with st.status("Retraining on reference plus labelled production data…") as status:
        try:
            version = monitoring.retrain(ctx.db, ctx.principal, model, task_id, env=env)
        except QuorumError as error:
            status.update(label="Retraining refused", state="error")
            fail(error)
            return
        status.update(label=f"v{version.number} registered", state="complete")
    flash(
        f"{model} v{version.number} was registered from the retraining. Submit it for review "
        "on the Models page."
    )
    st.rerun()


def _upload(ctx: PageContext, model: str, env: str) -> None:
    if not ctx.principal.can_anywhere(Permission.INGEST):
        return
    st.subheader("Upload production data")
    with st.form("mon_upload", clear_on_submit=True):
        kind = st.radio(
            "What is in the file",
            ["Predictions (timestamp, prediction_id, features)", "Labels (prediction_id, label)"],
            key="mon_upload_kind",
        )
        file = st.file_uploader("CSV or Parquet", type=["csv", "parquet"], key="mon_upload_file")
        sent = st.form_submit_button("Ingest", type="primary")
    if not sent or file is None:
        return
    bar = st.progress(0.0, text="Reading…")

    def progress(fraction: float, text: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=text)

    ingest = monitoring.ingest if kind.startswith("Predictions") else monitoring.ingest_labels
    try:
        result = ingest(
            ctx.db,
            ctx.principal,
            model,
            file.getvalue(),
            env=env,
            source="upload",
            filename=file.name,
            progress=progress,
        )
    except QuorumError as error:
        bar.empty()
        fail(error)
        return
    flash(result.message)
    st.rerun()


def window_label(day: date) -> str:
    return day.isoformat()
