"""Monitoring page: health in plain words, metric series, drift, quality, performance, alerts,
retraining and uploads. Everything drawn comes from the stored window aggregates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from core import charts
from core.auth import SYSTEM, Permission
from core.errors import NotFound, QuorumError
from core.evaluation import METRIC_LABELS
from core.monitoring.profile import column_label
from core.monitoring.stats import TEST_LABELS, format_statistic
from core.services import monitoring, revalidation
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


def _revalidation(ctx: PageContext, model: str) -> None:
    """The production version's revalidation date, flagged when overdue or failed."""
    from core.ui.findings_panel import badge

    try:
        status = revalidation.model_revalidation(ctx.db, ctx.principal, model)
    except QuorumError as error:
        fail(error)
        return
    if status is not None:
        badge(status)


@st.cache_resource(show_spinner=False, max_entries=256)
def _drawn(key: tuple[Any, ...], _build: Callable[[], Any]) -> Any:
    """A figure (or a distribution) built once per stored state and shared across reruns and
    people: `key` holds the store, model, environment and data fingerprint (so new data builds
    it again) and what is drawn. Building Plotly figures was half of this page's render time.
    The object is shared: nothing may change it after it is built."""
    return _build()


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
    _revalidation(ctx, model)
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
    state = (ctx.db.url, model, env, fingerprint)
    with tabs[0]:
        _over_time(bundle, data, state)
    with tabs[1]:
        _drift(bundle, data, state)
    with tabs[2]:
        _quality(bundle)
    with tabs[3]:
        _performance(bundle, data, state)
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


def _over_time(bundle: PageData, data: monitoring.MonitoringData, state: tuple[Any, ...]) -> None:
    series, settings = bundle.series, data.settings
    per = monitoring.WINDOWS[settings.window]
    st.caption(
        f"One point per window ({per}); red diamonds mark anomalies (far from the recent "
        "windows); hollow grey points are partial windows, still filling, never anomalies."
    )
    span = charts.shared_x_range(series)
    when = f"Window (start of each {per.split(' ')[0]})"
    goal = settings.goal
    if goal is not None and series["goal_value"].notna().any():
        st.plotly_chart(
            _drawn(
                (*state, "goal"),
                lambda: charts.time_series(
                    series,
                    "window",
                    "goal_value",
                    f"{goal.label} per window (goal: {goal.statement()})",
                    threshold=goal.target,
                    anomalies_col="goal_value_anomaly",
                    x_title=when,
                    y_title=goal.label,
                    partial_col="partial",
                    x_range=span,
                ),
            ),
            key="chart_goal",
        )
    st.plotly_chart(
        _drawn(
            (*state, "drift_share"),
            lambda: charts.time_series(
                series,
                "window",
                "drift_share",
                "Share of features that drifted",
                threshold=settings.drift.dataset_drift_share,
                anomalies_col="drift_share_anomaly",
                x_title=when,
                y_title="Features drifted (% of features)",
                partial_col="partial",
                x_range=span,
                percent=True,
            ),
        ),
        key="chart_drift_share",
    )
    st.plotly_chart(
        _drawn(
            (*state, "rows"),
            lambda: charts.time_series(
                series,
                "window",
                "n_rows",
                "Predictions per window",
                anomalies_col="n_rows_anomaly",
                x_title=when,
                y_title=f"Predictions (rows per {per.split(' ')[0]})",
                partial_col="partial",
                x_range=span,
            ),
        ),
        key="chart_rows",
    )


def _drift(bundle: PageData, data: monitoring.MonitoringData, state: tuple[Any, ...]) -> None:
    drift = bundle.drift
    st.plotly_chart(
        _drawn((*state, "heatmap"), lambda: charts.drift_heatmap(drift, sorted(data.partial))),
        key="chart_heatmap",
    )
    windows = sorted(data.windows)
    features = [*data.profile.features]
    left, right = st.columns(2)
    feature = left.selectbox("Feature", features, key="mon_feature", format_func=column_label)
    window = right.selectbox(
        "Window",
        windows,
        index=len(windows) - 1,
        key="mon_window",
        format_func=lambda w: f"{w} (partial)" if w in data.partial else str(w),
    )
    try:
        dist = _drawn(
            (*state, "distribution", feature, window),
            lambda: monitoring.distribution(data, feature, window),
        )
    except QuorumError as error:
        fail(error)
        return
    st.plotly_chart(
        _drawn(
            (*state, "distribution chart", feature, window),
            lambda: charts.distribution_compare(
                dist.bins,
                dist.reference,
                dist.current,
                f"{column_label(feature)}: reference data against the window of {window}",
            ),
        ),
        key="chart_distribution",
    )
    if dist.drift is not None:
        d = dist.drift
        st.text(
            f"{TEST_LABELS.get(d.test, d.test)}: {format_statistic(d.test, d.value)} "
            f"(threshold {format_statistic(d.test, d.threshold)}) -> "
            f"{'drift' if d.drifted else 'no drift'}. Why this test: {d.reason}."
        )
    latest = drift[drift["window"] == window]
    st.dataframe(
        pd.DataFrame(
            {
                "Feature": [column_label(f) for f in latest["feature"]],
                "Test": [TEST_LABELS.get(t, t) for t in latest["test"]],
                "Value": [
                    format_statistic(t, v)
                    for t, v in zip(latest["test"], latest["value"], strict=True)
                ],
                "Threshold": [
                    format_statistic(t, v)
                    for t, v in zip(latest["test"], latest["threshold"], strict=True)
                ],
                "Drift": ["drift" if d else "no drift" for d in latest["drifted"]],
                "Why this test": latest["reason"].to_list(),
            }
        ),
        hide_index=True,
        width="stretch",
        key="table_drift",
    )


COLUMN_WORDS = {
    "window": "Window (start date)",
    "feature": "Feature",
    "kind": "Kind",
    "n_rows": "Rows",
    "n_labelled": "Rows with a label",
    "source": "Measured or estimated",
    "missing_rate": "Missing (share of rows)",
    "reference_missing_rate": "Missing in the reference data",
    "out_of_range_rate": "Outside the reference range",
    "unseen_category_rate": "Categories never seen before",
    "type_errors": "Values of the wrong type",
    "duplicate_ids": "Repeated prediction ids",
    "problems": "Problems",
    "issues": "Issues",
}


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names in words (metric names by their labels, estimates marked), features
    through `column_label`."""
    words = dict(COLUMN_WORDS)
    for column in frame.columns:
        name = str(column)
        if name.startswith("estimated_"):
            words[name] = METRIC_LABELS.get(name.removeprefix("estimated_"), name) + " (estimated)"
        elif name in METRIC_LABELS:
            words[name] = METRIC_LABELS[name]
    shown = frame.rename(columns=words)
    if "Feature" in shown:
        shown["Feature"] = [column_label(f) for f in shown["Feature"]]
    return shown


def _quality(bundle: PageData) -> None:
    quality = bundle.quality
    issues = quality.groupby("window")["issues"].first().reset_index()
    st.dataframe(
        _readable(issues.sort_values("window", ascending=False)), hide_index=True, key="q_issues"
    )
    st.dataframe(
        _readable(quality.sort_values(["window", "feature"], ascending=[False, True])),
        hide_index=True,
        width="stretch",
        key="q_table",
    )


def _performance(bundle: PageData, data: monitoring.MonitoringData, state: tuple[Any, ...]) -> None:
    perf = bundle.performance
    at = data.decision_threshold
    st.caption(
        f"Goal: {data.goal_description}"
        + ("" if at is None else f" Class metrics of the rows Quorum scored use v{data.version}'s "
           f"decision threshold {at:g}.")
    )  # fmt: skip
    regression = data.task == "regression"
    metric = "mae" if regression else "accuracy"
    if data.settings.goal is not None and data.settings.goal.metric in perf:
        metric = data.settings.goal.metric
    frame = perf.copy()
    target = data.settings.goal.target if data.settings.goal else None
    label = METRIC_LABELS.get(metric, metric)
    span = charts.shared_x_range(bundle.series, frame)
    when = "Window (start date)"
    st.plotly_chart(
        _drawn(
            (*state, "realised", metric),
            lambda: charts.time_series(
                frame,
                "window",
                metric,
                f"{label} measured on labelled production data",
                threshold=target,
                x_title=when,
                y_title=label,
                x_range=span,
            ),
        ),
        key="chart_realised",
    )
    estimated = f"estimated_{metric}"
    if estimated in frame and frame[estimated].notna().any():
        st.plotly_chart(
            _drawn(
                (*state, "estimated", metric),
                lambda: charts.time_series(
                    frame,
                    "window",
                    estimated,
                    f"{label} estimated from the model's scores (CBPE, before labels arrive)",
                    threshold=target,
                    x_title=when,
                    y_title=f"{label} (estimated)",
                    x_range=span,
                ),
            ),
            key="chart_estimated",
        )
    st.dataframe(_readable(perf), hide_index=True, width="stretch", key="perf_table")


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
