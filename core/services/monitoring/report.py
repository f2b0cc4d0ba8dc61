"""The monitoring report as plain JSON for the CLI, SDK and API."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np

from core.auth import Principal
from core.db import Database
from core.errors import NotFound
from core.monitoring.profile import PREDICTION, SCORE
from core.monitoring.quality import quality_table
from core.monitoring.stats import FeatureDrift
from core.monitoring.windows import (
    window_drift,
)
from core.services.monitoring.common import quiet
from core.services.monitoring.status import window_status
from core.services.monitoring.views import (
    MonitoringData,
    health_card,
    monitoring_data,
    performance_results,
)

# --- report for machines -------------------------------------------------------------------


def report(
    db: Database,
    actor: Principal,
    model_name: str,
    env: str = "production",
    window: date | None = None,
) -> dict[str, Any]:
    """Drift per feature (test, value, threshold, verdict, reason), quality and performance."""
    data = monitoring_data(db, actor, model_name, env)
    if data.empty:
        raise NotFound(
            f"No production data was ingested for {model_name} in {env}; nothing to report."
        )
    day = window or max(data.windows)
    if day not in data.windows:
        known = sorted(data.windows)
        raise NotFound(
            f"There is no window starting {day} for {model_name} in {env}. "
            f"Windows run from {known[0]} to {known[-1]}."
        )
    agg = data.windows[day]
    state = window_status(data.profile, data.settings, day, agg)
    with quiet():
        results = window_drift(data.profile, agg, data.settings.drift)
        quality = quality_table(data.profile, {day: agg}, data.settings.quality)
    drift = [
        {**r.to_dict(), "feature": r.column, "verdict": "drift" if r.drifted else "no drift"}
        for r in results
        if r.column not in (PREDICTION, SCORE)
    ]
    outputs = {r.column: r for r in results if r.column in (PREDICTION, SCORE)}
    perf = performance_results(_one_window(data, day))
    card = health_card(data)
    return _json_ready(
        {
            "model": model_name,
            "environment": env,
            "version": data.version,
            "window": day.isoformat(),
            "rows": agg.n_rows,
            "rows_aggregated_outside": data.external_rows.get(day, 0),
            "status": state.status,
            "health": card.headline,
            "dataset_drift": {
                "share": state.drift_share,
                "threshold": data.settings.drift.dataset_drift_share,
                "drifted": state.dataset_drifted,
            },
            "features": drift,
            "prediction_drift": _output(outputs.get(PREDICTION)),
            "score_drift": _output(outputs.get(SCORE)),
            "quality": {
                "issues": state.quality_issues,
                "problems": state.quality_problems,
                "columns": quality.drop(columns=["window"]).to_dict(orient="records"),
            },
            "performance": {
                **(perf.drop(columns=["window"]).to_dict(orient="records")[0]),
                "goal": data.goal_description,
                "goal_value": state.goal_value,
                "goal_met": state.goal_met,
            },
            "message": f"{model_name} v{data.version} in {env}, window {day}: {state.status}; "
            f"{len(state.drifted)} of {state.n_features} features drifted; "
            f"prediction drift: {_verdict(state.prediction_drifted)}; "
            f"score drift: {_verdict(state.score_drifted)}; "
            f"{state.quality_issues} quality issue(s).",
        }
    )


def _verdict(drifted: bool | None) -> str:
    return "not measured" if drifted is None else "yes" if drifted else "no"


def _output(result: FeatureDrift | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {**result.to_dict(), "verdict": "drift" if result.drifted else "no drift"}


def _one_window(data: MonitoringData, day: date) -> MonitoringData:
    return MonitoringData(
        data.model,
        data.task,
        data.environment,
        data.version,
        data.goal_description,
        data.profile,
        data.settings,
        {day: data.windows[day]},
    )


def _json_ready(value: Any) -> Any:
    return _finite_only(json.loads(json.dumps(value, default=_plain)))


def _finite_only(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
